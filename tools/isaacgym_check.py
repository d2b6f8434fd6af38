"""First run with IsaacGym: does the IsaacGym engine put the character where MuJoCo does?

    python -m tools.isaacgym_check [--num-envs 4] [--motion-file motions/humanoid3d_walk.txt] [--device cuda:0]

It builds the IsaacGym engine and the MuJoCo CPU engine with a few envs, the PD drives of both off,
writes the same reference states of a clip into both, half a metre up (each env a different clip
time, envs away from the origin in IsaacGym's grid), steps each once by a millisecond (free flight:
bodies move a few millimetres, velocities change by a few cm/s) and compares every body's position,
rotation and velocities, and IsaacGym's body masses with MuJoCo's. It also measures, from the bodies' motion over the step, whether
IsaacGym reports rigid-body velocities at the centre of mass (the engine's assumption) or at the
body origin. It prints a table and exits 1 if any check fails. docs/isaacgym.md says what each
failure would mean. IsaacGym is imported first, as it requires.
"""
import argparse
import json
import sys

LIFT_M = 0.5
TOLERANCES = {"position (m)": 0.01, "rotation (deg)": 2.0, "linear velocity (m/s)": 0.2,
              "angular velocity (rad/s)": 0.5, "mass (relative)": 0.01}


def _compare(ig_state, mj_state):
    import torch

    from tasks.body_state import ANG_VEL, LIN_VEL, POS, ROT
    from tasks.rotations import quat_diff_angle

    return {"position (m)": (ig_state[..., POS] - mj_state[..., POS]).norm(dim=-1),
            "rotation (deg)": torch.rad2deg(quat_diff_angle(ig_state[..., ROT], mj_state[..., ROT])),
            "linear velocity (m/s)": (ig_state[..., LIN_VEL] - mj_state[..., LIN_VEL]).norm(dim=-1),
            "angular velocity (rad/s)": (ig_state[..., ANG_VEL] - mj_state[..., ANG_VEL]).norm(dim=-1)}


def _velocity_reference_point(engine, before, after, dt):
    """Whether the bodies' finite-difference velocities match the engine's (origin) velocities or the
    unshifted ones (IsaacGym's raw, at the centre of mass): 'com' means the engine's shift is right."""
    from tasks.body_state import LIN_VEL, POS

    moved = (after[..., POS] - before[..., POS]) / dt
    if moved.norm(dim=-1).max().item() * dt < 1e-5:
        return "inconclusive (the bodies did not move)", 0.0, 0.0
    shifted_error = (moved - after[..., LIN_VEL]).norm(dim=-1).mean().item()
    raw = engine._body_raw[:, engine._body_perm][..., LIN_VEL]
    raw_error = (moved - raw).norm(dim=-1).mean().item()
    verdict = "centre of mass (the engine's shift applies)" if shifted_error <= raw_error else \
        "body origin (the engine's shift is wrong: report it)"
    return verdict, shifted_error, raw_error


def run_check(num_envs: int, motion_file: str, device: str) -> dict:
    import isaacgym  # noqa: F401  (before torch)
    import torch

    from poselib_utils.repository import DEFAULT_MJCF, repo_path
    from tasks.engines import EngineConfig, build_engine
    from tasks.reference.motion_lib import MotionLib

    dt = 1.0e-3
    cfg = EngineConfig(mjcf_path=DEFAULT_MJCF, num_envs=num_envs, sim_dt=dt, substeps=1, device=device)
    isaac = build_engine("isaacgym", cfg)
    mujoco_engine = build_engine("mujoco", EngineConfig(mjcf_path=DEFAULT_MJCF, num_envs=num_envs, sim_dt=dt,
                                                        substeps=1))
    _drives_off(isaac, mujoco_engine)
    motion = MotionLib([repo_path(motion_file)], DEFAULT_MJCF, torch.device(device))
    times = torch.linspace(0.1, float(motion.durations[0]) - 0.1, num_envs, device=device)
    ref = motion.get_state(torch.zeros(num_envs, dtype=torch.long, device=device), times)
    lifted = ref.root_pos + torch.tensor([0.0, 0.0, LIFT_M], device=device)  # clear of the floor
    results = {}
    for engine in (isaac, mujoco_engine):
        state = [t.to(engine.device) for t in (lifted, ref.root_rot, ref.root_vel, ref.root_ang_vel,
                                               ref.dof_pos, ref.dof_vel)]
        engine.set_state(None, *state)
        results[engine] = engine.body_state().clone()
        engine.set_pd_targets(state[4])
        engine.step()
    errors = _compare(isaac.body_state().cpu(), mujoco_engine.body_state().cpu())
    masses = (isaac._masses.cpu() - isaac.mujoco_masses).abs() / isaac.mujoco_masses
    verdict, shifted, raw = _velocity_reference_point(isaac, results[isaac], isaac.body_state(), dt)
    isaac.close()
    report = {name: {"max": float(err.max()), "worst body": isaac.body_names[int(err.max(dim=0).values.argmax())]}
              for name, err in errors.items()}
    report["mass (relative)"] = {"max": float(masses.max()), "worst body": isaac.body_names[int(masses.argmax())]}
    for name, row in report.items():
        row["tolerance"] = TOLERANCES[name]
        row["ok"] = row["max"] <= TOLERANCES[name]
    report["velocity reported at"] = {"verdict": verdict, "error with shift (m/s)": shifted,
                                      "error without (m/s)": raw, "ok": not verdict.startswith("body origin")}
    return report


def _drives_off(isaac, mujoco_engine) -> None:
    """No PD drive in either engine: one step is then free motion, the same in both up to solvers."""
    dof_props = isaac.dof_properties.copy()
    dof_props["stiffness"][:] = 0.0
    dof_props["damping"][:] = 0.0
    for env, actor in zip(isaac.envs, isaac.actors):
        isaac.gym.set_actor_dof_properties(env, actor, dof_props)
    mujoco_engine.model.actuator_gainprm[:, 0] = 0.0
    mujoco_engine.model.actuator_biasprm[:, 1:3] = 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--motion-file", default="motions/humanoid3d_walk.txt")
    parser.add_argument("--device", default="cpu", help="IsaacGym's sim device (cpu, or cuda:0)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    try:
        report = run_check(args.num_envs, args.motion_file, args.device)
    except ImportError as err:
        raise SystemExit("isaacgym_check needs IsaacGym Preview 4 (docs/isaacgym.md): {}".format(err))
    for name, row in report.items():
        if "verdict" in row:
            print("{:<26} {}  (mean error {:.3f} m/s with the shift, {:.3f} without)".format(
                name, row["verdict"], row["error with shift (m/s)"], row["error without (m/s)"]))
        else:
            print("{:<26} max {:9.4f} (tolerance {:g}) at {:<15} {}".format(
                name, row["max"], row["tolerance"], row["worst body"], "ok" if row["ok"] else "FAILED"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if all(row["ok"] for row in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
