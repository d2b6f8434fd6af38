"""A stand-in for IsaacGym Preview 4, for machines where it cannot be installed (tests only).

It is not IsaacGym and simulates no physics. It keeps the rules of IsaacGym that the project's
engine depends on, so a break of any of them fails a test here rather than on a user's first run:

* import order: like IsaacGym, importing it after torch raises ImportError;
* one sim per process (IsaacGymEnvs keeps a global for this);
* the MJCF importer: a body's three hinges become one spherical joint whose three DOFs are the
  exponential map of the joint rotation (x, y, z components) and the child-frame angular velocity
  (what IsaacGymEnvs' HumanoidAMP and MimicKit write there); a body with hinges in another order
  is refused, since what IsaacGym does then is not known; geom masses come from ``density``
  (default 1000), a geom's ``mass`` is ignored;
* tensors: root, DOF and rigid-body states in each env's own frame, quaternions x, y, z, w, rigid
  body linear velocities at the centre of mass; one indexed state write per step;
* ``simulate`` moves nothing: it recomputes every body's state from the root and DOF states by
  forward kinematics under the rules above (no gravity, no contacts, no drives).
"""
import sys

if "torch" in sys.modules:
    raise ImportError("PyTorch was imported before isaacgym modules.  Please import torch after isaacgym modules.")
