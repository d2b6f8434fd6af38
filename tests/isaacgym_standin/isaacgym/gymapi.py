"""Stand-in gymapi: the calls the project's IsaacGym engine makes, under IsaacGym's rules (see
__init__.py). Written from IsaacGym's documented API and from what IsaacGymEnvs and MimicKit do
with it, independently of the project's engine code."""
import math
import xml.etree.ElementTree as ET

import numpy as np
import torch
from scipy.spatial.transform import Rotation

UP_AXIS_Z = 1
SIM_PHYSX = 1
DOF_MODE_NONE, DOF_MODE_POS = 0, 1
DOMAIN_SIM = 2
ENV_SPACE, LOCAL_SPACE, GLOBAL_SPACE = 0, 1, 2  # gymapi.CoordinateSpace
KEY_ESCAPE, KEY_V, KEY_SPACE, KEY_BACKSPACE, KEY_G = range(5)
DEFAULT_DENSITY = 1000.0  # kg/m^3, IsaacGym's AssetOptions.density
DOF_PROPERTIES = np.dtype([("hasLimits", "?"), ("lower", "f4"), ("upper", "f4"), ("driveMode", "i4"),
                           ("velocity", "f4"), ("effort", "f4"), ("stiffness", "f4"), ("damping", "f4"),
                           ("friction", "f4"), ("armature", "f4")])


class Vec3:
    def __init__(self, x=0.0, y=0.0, z=0.0):
        self.x, self.y, self.z = float(x), float(y), float(z)


class Quat:
    def __init__(self, x=0.0, y=0.0, z=0.0, w=1.0):
        self.x, self.y, self.z, self.w = float(x), float(y), float(z), float(w)


class Transform:
    def __init__(self):
        self.p, self.r = Vec3(), Quat()


class _Fields:
    """Settable attributes limited to the real class's (a typo raises, as on IsaacGym's objects)."""
    FIELDS = ()

    def __setattr__(self, name, value):
        if name not in self.FIELDS:
            raise AttributeError("{} has no attribute '{}'".format(type(self).__name__, name))
        object.__setattr__(self, name, value)


class PhysXParams(_Fields):
    FIELDS = ("use_gpu", "solver_type", "num_position_iterations", "num_velocity_iterations", "num_threads",
              "contact_offset", "rest_offset", "bounce_threshold_velocity", "max_depenetration_velocity",
              "default_buffer_size_multiplier", "max_gpu_contact_pairs", "num_subscenes", "contact_collection")


class SimParams(_Fields):
    FIELDS = ("up_axis", "gravity", "dt", "substeps", "use_gpu_pipeline", "num_client_threads", "physx")

    def __init__(self):
        self.physx = PhysXParams()


class PlaneParams(_Fields):
    FIELDS = ("normal", "static_friction", "dynamic_friction", "restitution", "distance")


class AssetOptions(_Fields):
    FIELDS = ("default_dof_drive_mode", "angular_damping", "linear_damping", "max_angular_velocity",
              "max_linear_velocity", "collapse_fixed_joints", "use_physx_armature", "fix_base_link", "density",
              "armature")

    def __init__(self):
        self.density = DEFAULT_DENSITY


class CameraProperties:
    pass


class RigidBodyProperties:
    def __init__(self, mass, com):
        self.mass, self.com, self.invMass = float(mass), Vec3(*com), 1.0 / float(mass)


def _geom_mass_and_centre(geom, density):
    """IsaacGym's rule: density times volume (a geom's ``mass`` attribute is not read)."""
    kind = geom.get("type", "sphere")
    size = [float(v) for v in geom.get("size", "0").split()]
    centre = np.array([float(v) for v in geom.get("pos", "0 0 0").split()])
    if kind == "sphere":
        volume = 4.0 / 3.0 * math.pi * size[0] ** 3
    elif kind == "capsule":
        ends = np.array([float(v) for v in geom.get("fromto").split()]).reshape(2, 3)
        centre = ends.mean(axis=0)
        volume = math.pi * size[0] ** 2 * np.linalg.norm(ends[1] - ends[0]) + 4.0 / 3.0 * math.pi * size[0] ** 3
    elif kind == "box":
        volume = 8.0 * size[0] * size[1] * size[2]
    else:
        raise NotImplementedError("stand-in: geom type " + kind)
    return float(geom.get("density", density)) * volume, centre


class _Asset:
    """The MJCF as IsaacGym's importer reads it: bodies depth-first, one joint per body."""

    def __init__(self, path, options):
        world = ET.parse(path).getroot().find("worldbody")
        self.bodies = []

        def visit(elem, parent):
            for body in elem.findall("body"):
                self.bodies.append(self._body(body, parent, options))
                visit(body, len(self.bodies) - 1)

        visit(world, -1)
        self.dof_names = [n for b in self.bodies for n in b["dofs"]]
        self.dof_props = np.zeros(len(self.dof_names), dtype=DOF_PROPERTIES)

    @staticmethod
    def _body(body, parent, options):
        hinges = [j for j in body.findall("joint") if j.get("type", "hinge") == "hinge"]
        axes = [tuple(float(v) for v in j.get("axis", "0 0 1").split()) for j in hinges]
        if len(hinges) == 3:
            if axes != [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]:
                raise NotImplementedError("stand-in: body '{}' lists its hinges about {}: which exp-map component "
                                          "each DOF would carry is not known".format(body.get("name"), axes))
            kind = "spherical"
        elif len(hinges) == 1:
            kind = "revolute"
        elif not hinges:
            kind = "free" if parent < 0 else "fixed"
        else:
            raise NotImplementedError("stand-in: body '{}' has {} hinges".format(body.get("name"), len(hinges)))
        masses, centres = zip(*[_geom_mass_and_centre(g, options.density) for g in body.findall("geom")])
        mass = sum(masses)
        return {"name": body.get("name"), "parent": parent, "kind": kind, "dofs": [j.get("name") for j in hinges],
                "axis": np.array(axes[0]) if kind == "revolute" else None, "mass": mass,
                "com": sum(m * c for m, c in zip(masses, centres)) / mass,
                "offset": np.array([float(v) for v in body.get("pos", "0 0 0").split()])}


class _Env:
    def __init__(self, index, origin):
        self.index, self.origin = index, origin


class Gym:
    def __init__(self):
        self.sims = 0
        self.envs = []
        self.asset = None
        self.writes = set()  # indexed state writes since the last simulate
        self.pending_forces = None  # forces for the next simulate (PhysX applies them for one step)
        self.simulated_forces = []  # per simulate: the [bodies, 3] forces it applied, or None

    def create_sim(self, compute_device, graphics_device, sim_type, params):
        if self.sims:
            raise RuntimeError("stand-in: IsaacGym supports one sim per process")
        self.sims += 1
        self.envs, self.asset, self.writes = [], None, set()
        return "sim"

    def add_ground(self, sim, params):
        pass

    def load_asset(self, sim, root, filename, options):
        import os

        return _Asset(os.path.join(root, filename), options)

    def get_asset_rigid_body_names(self, asset):
        return [b["name"] for b in asset.bodies]

    def get_asset_dof_names(self, asset):
        return list(asset.dof_names)

    def get_asset_dof_properties(self, asset):
        return asset.dof_props.copy()

    def create_env(self, sim, lower, upper, per_row):
        i = len(self.envs)
        origin = Vec3((i % per_row) * (upper.x - lower.x), (i // per_row) * (upper.y - lower.y), 0.0)
        self.envs.append(_Env(i, origin))
        return self.envs[-1]

    def create_actor(self, env, asset, pose, name, group, collision_filter, segmentation_id):
        self.asset = asset
        return 0

    def set_actor_dof_properties(self, env, actor, props):
        self.dof_props = props

    def get_env_origin(self, env):
        return env.origin

    def get_actor_index(self, env, actor, domain):
        return env.index

    def get_actor_rigid_body_properties(self, env, actor):
        return [RigidBodyProperties(b["mass"], b["com"]) for b in self.asset.bodies]

    def prepare_sim(self, sim):
        n, nb, nd = len(self.envs), len(self.asset.bodies), len(self.asset.dof_names)
        self.state = {"root": torch.zeros(n, 13), "dof": torch.zeros(n * nd, 2), "body": torch.zeros(n * nb, 13),
                      "contact": torch.zeros(n * nb, 3)}
        self.state["root"][:, 6] = 1.0
        self.tensors = {k: v.clone() for k, v in self.state.items()}
        self.targets = torch.zeros(n * nd)

    def acquire_actor_root_state_tensor(self, sim):
        return self.tensors["root"]

    def acquire_dof_state_tensor(self, sim):
        return self.tensors["dof"]

    def acquire_rigid_body_state_tensor(self, sim):
        return self.tensors["body"]

    def acquire_net_contact_force_tensor(self, sim):
        return self.tensors["contact"]

    def _indexed_write(self, kind, tensor, ids, count):
        if kind in self.writes:
            raise RuntimeError("stand-in: {} written twice in one step; IsaacGym's maintainers ask for one indexed "
                               "write per step".format(kind))
        if ids.dtype != torch.int32 or ids.numel() != count:
            raise TypeError("stand-in: actor indices must be {} int32 values".format(count))
        self.writes.add(kind)
        rows = ids.long()
        if kind == "root":
            self.state["root"][rows] = tensor[rows]
        else:
            nd = len(self.asset.dof_names)
            dofs = (rows[:, None] * nd + torch.arange(nd)).flatten()
            self.state["dof"][dofs] = tensor.reshape(-1, 2)[dofs]

    def set_actor_root_state_tensor_indexed(self, sim, tensor, ids, count):
        self._indexed_write("root", tensor, ids, count)

    def set_dof_state_tensor_indexed(self, sim, tensor, ids, count):
        self._indexed_write("dof", tensor, ids, count)

    def set_dof_position_target_tensor(self, sim, tensor):
        if tensor.numel() != self.targets.numel():
            raise ValueError("stand-in: {} DOF targets for {} DOFs".format(tensor.numel(), self.targets.numel()))
        self.targets = tensor.reshape(-1).clone()

    def apply_rigid_body_force_tensors(self, sim, forceTensor=None, torqueTensor=None, space=ENV_SPACE):
        """Forces (and torques) at each rigid body's centre of mass, every body of the sim, for the
        next simulate only."""
        n, nb = len(self.envs), len(self.asset.bodies)
        for name, tensor in (("forceTensor", forceTensor), ("torqueTensor", torqueTensor)):
            if tensor is not None and (tensor.dtype != torch.float32 or tensor.numel() != n * nb * 3):
                raise ValueError("stand-in: {} must hold {} x 3 float32 values (one row per rigid body of the "
                                 "sim)".format(name, n * nb))
        if space not in (ENV_SPACE, LOCAL_SPACE, GLOBAL_SPACE):
            raise ValueError("stand-in: space must be a gymapi.CoordinateSpace")
        if forceTensor is not None:
            self.pending_forces = (forceTensor.reshape(n * nb, 3).clone(), space)
        return True

    def simulate(self, sim):
        self.writes.clear()
        self.simulated_forces.append(self.pending_forces)
        self.pending_forces = None
        self.state["body"][:] = torch.from_numpy(self._forward_kinematics()).float()

    def _forward_kinematics(self):
        """Every body's state (env frame, xyzw, linear velocity at the centre of mass) from the root
        and DOF states, under the importer's joints."""
        root = self.state["root"].double().numpy()
        dof = self.state["dof"].double().numpy().reshape(len(self.envs), -1, 2)
        out = np.zeros((len(self.envs), len(self.asset.bodies), 13))
        for e in range(len(self.envs)):
            rots, pos, lin, ang, k = [], [], [], [], 0
            for b, body in enumerate(self.asset.bodies):
                if body["kind"] == "free":
                    rot, p, w = Rotation.from_quat(root[e, 3:7]), root[e, 0:3], root[e, 10:13]
                    v = root[e, 7:10] - np.cross(w, rot.apply(body["com"]))  # the root's COM velocity -> origin's
                else:
                    par = body["parent"]
                    if body["kind"] == "spherical":
                        local, rel = Rotation.from_rotvec(dof[e, k:k + 3, 0]), dof[e, k:k + 3, 1]
                    elif body["kind"] == "revolute":
                        local, rel = Rotation.from_rotvec(body["axis"] * dof[e, k, 0]), body["axis"] * dof[e, k, 1]
                    else:
                        local, rel = Rotation.identity(), np.zeros(3)
                    k += len(body["dofs"])
                    rot = rots[par] * local
                    p = pos[par] + rots[par].apply(body["offset"])
                    w = ang[par] + rot.apply(rel)
                    v = lin[par] + np.cross(ang[par], p - pos[par])
                rots.append(rot), pos.append(p), ang.append(w), lin.append(v)
                out[e, b] = np.concatenate([p, rot.as_quat(), v + np.cross(w, rot.apply(body["com"])), w])
        return out.reshape(len(self.envs) * len(self.asset.bodies), 13)

    def fetch_results(self, sim, wait):
        pass

    def _refresh(self, kind):
        self.tensors[kind][:] = self.state[kind]

    def refresh_actor_root_state_tensor(self, sim):
        self._refresh("root")

    def refresh_dof_state_tensor(self, sim):
        self._refresh("dof")

    def refresh_rigid_body_state_tensor(self, sim):
        self._refresh("body")

    def refresh_net_contact_force_tensor(self, sim):
        self._refresh("contact")

    def create_viewer(self, sim, props):
        return None

    def destroy_sim(self, sim):
        self.sims -= 1


_GYM = None


def acquire_gym():
    global _GYM
    if _GYM is None:
        _GYM = Gym()
    return _GYM


class Sim:
    """Annotation only: the stand-in's sim handle is a string."""


class Viewer:
    """Annotation only: the stand-in opens no viewer."""


Asset = _Asset
Env = _Env
