"""The imitation reward of HumanoidDeepMimic (built from the hydra config on the MuJoCo CPU engine)
against DeepMimic's formula computed by hand: each term alone, several at once, the weights'
normalisation and turning the whole character."""
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.spatial.transform import Rotation

from tasks.humanoid_deepmimic import compute_deepmimic_reward
from task_helpers import MJCF, make_cfg, make_task, reference, rotate_world_z

TERMS = ("pose", "vel", "end_eff", "root", "com", "body_pos")
MOVE_BODIES = ("end_eff", "root", "body_pos")  # perturbations that also move bodies: they change body_pos


@pytest.fixture(scope="module")
def reward_cfg():
    return OmegaConf.to_container(make_cfg().task.reward, resolve=True)


@pytest.fixture(scope="module")
def diff_weights():
    """DeepMimic's per-joint DiffWeight, normalised to sum 1, by body name (from the MJCF)."""
    custom = {el.get("name"): el.get("data") for el in ET.parse(MJCF).getroot().find("custom")}
    names = [entry.split(":")[0] for entry in custom["deepmimic_joints"].split()]
    weights = np.array([float(w) for w in custom["deepmimic_diff_weights"].split()])
    return dict(zip(names, weights / weights.sum()))


def sim_from_ref(ref):
    """A simulated state equal to the reference: body poses, root velocities, DOF and COM
    velocities (other bodies' velocities do not enter the reward)."""
    n, b = ref.body_pos.shape[:2]
    body_state = torch.zeros(n, b, 13)
    body_state[..., 0:3] = ref.body_pos
    body_state[..., 3:7] = ref.body_rot
    body_state[:, 0, 7:10] = ref.root_vel
    body_state[:, 0, 10:13] = ref.root_ang_vel
    return body_state, ref.dof_vel.clone(), ref.com_vel.clone()


def reward(task, ref, body_state, dof_vel, com_vel):
    return compute_deepmimic_reward(
        body_state=body_state, dof_vel=dof_vel, com_vel=com_vel, ref_body_pos=ref.body_pos,
        ref_body_rot=ref.body_rot, ref_root_vel=ref.root_vel, ref_root_ang_vel=ref.root_ang_vel,
        ref_dof_vel=ref.dof_vel, ref_com_vel=ref.com_vel, body_parents=task.body_parents,
        body_weights=task.body_weights, dof_weights=task.dof_weights, end_effector_mask=task.end_effector_mask,
        term_weights=task.reward_weights, term_scales=task.reward_scales, com_vel_coeff=task.com_vel_coeff,
        **task.root_err_coeffs)



def test_reward_is_one_when_state_equals_reference(task, reward_cfg):
    assert sum(reward_cfg[t + "_w"] for t in TERMS) == pytest.approx(1.0)
    ref = reference(task, 32)
    rew, terms = reward(task, ref, *sim_from_ref(ref))
    np.testing.assert_allclose(rew.numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(terms.numpy(), 1.0, atol=1e-6)


MAGNITUDES = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6]


def perturbed(task, kind, magnitudes):
    """One env per magnitude, all at the same reference time; the perturbation of ``kind``
    grows with the magnitude and (by construction) touches one reward term only."""
    n = len(magnitudes)
    one = reference(task, 1, seed=3)
    ref = type(one)(*[v.expand((n,) + v.shape[1:]).clone() for v in one])
    body_state, dof_vel, com_vel = sim_from_ref(ref)
    m = torch.tensor(magnitudes, dtype=torch.float32)
    bodies = task.engine.body_names
    if kind == "pose":  # turn the right ankle (a leaf) about world z by m rad
        b = bodies.index("right_ankle")
        body_state[:, b, 3:7] = rotate_world_z(body_state[:, b, 3:7], m.numpy())
    elif kind == "vel":  # right knee hinge speed off by 10 m rad/s
        dof_vel[:, task.engine.dof_names.index("right_knee")] += 10.0 * m
    elif kind == "end_eff":  # right foot raised by m/4 m
        body_state[:, bodies.index("right_ankle"), 2] += 0.25 * m
    elif kind == "root":  # whole character shifted sideways by m/2 m
        body_state[:, :, 1] += 0.5 * m.unsqueeze(1)
    elif kind == "com":  # centre of mass velocity off by m m/s along x and y
        com_vel[:, 0:2] += m.unsqueeze(1)
    elif kind == "body_pos":  # the neck (neither root nor end effector) moved sideways by m/4 m
        body_state[:, bodies.index("neck"), 1] += 0.25 * m
    return ref, body_state, dof_vel, com_vel, m


@pytest.mark.parametrize("kind", TERMS)
def test_each_term_decreases_monotonically_with_its_error(task, kind):
    ref, body_state, dof_vel, com_vel, _ = perturbed(task, kind, MAGNITUDES)
    rew, terms = reward(task, ref, body_state, dof_vel, com_vel)
    col = TERMS.index(kind)
    term = terms[:, col].numpy()
    assert term[0] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(term) < 0), term
    assert term[-1] < 0.9
    untouched = [i for i, t in enumerate(TERMS) if t != kind and not (t == "body_pos" and kind in MOVE_BODIES)]
    np.testing.assert_allclose(terms[:, untouched].numpy(), 1.0, atol=1e-5)
    if task.reward_weights[col] > 0:
        assert np.all(np.diff(rew.numpy()) < 0)
    else:  # body_pos: weight 0 in DeepMimic's reward, the task's default
        np.testing.assert_allclose(rew.numpy(), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def task_with_body_pos():
    return make_task("task.reward.body_pos_w=0.25")


@pytest.mark.parametrize("body_pos_w", [0.0, 0.25])
def test_each_perturbation_against_the_formula_by_hand(task, task_with_body_pos, reward_cfg, diff_weights,
                                                       body_pos_w):
    """Each perturbation's errors computed here from DeepMimic's definitions (and PHC's body-position
    error: mean over the 15 bodies of the squared distance); the weights divided by their sum."""
    graded = task_with_body_pos if body_pos_w else task
    w = {t: reward_cfg[t + "_w"] for t in TERMS}
    w["body_pos"] = body_pos_w
    w = {t: v / sum(w.values()) for t, v in w.items()}
    s = {t: reward_cfg[t + "_scale"] for t in TERMS}
    c_pos = reward_cfg["root_pos_coeff"]
    c_com = reward_cfg["com_vel_coeff"]
    mags = [0.0, 0.3, 0.7]
    for kind in TERMS:
        ref, body_state, dof_vel, com_vel, m = perturbed(graded, kind, mags)
        rew, _ = reward(graded, ref, body_state, dof_vel, com_vel)
        m = np.array(mags)
        err = {t: np.zeros(len(mags)) for t in TERMS}
        if kind == "pose":
            err["pose"] = diff_weights["right_ankle"] * m ** 2
        elif kind == "vel":
            err["vel"] = diff_weights["right_knee"] * (10.0 * m) ** 2
        elif kind == "end_eff":
            err["end_eff"] = (0.25 * m) ** 2
            err["body_pos"] = (0.25 * m) ** 2 / 15
        elif kind == "root":
            err["root"] = c_pos * (0.5 * m) ** 2
            err["body_pos"] = (0.5 * m) ** 2
        elif kind == "com":
            err["com"] = c_com * 2 * m ** 2
        elif kind == "body_pos":
            err["body_pos"] = (0.25 * m) ** 2 / 15
        expected = sum(w[t] * np.exp(-s[t] * err[t]) for t in TERMS)
        np.testing.assert_allclose(rew.numpy(), expected, atol=2e-6, err_msg=kind)



def test_reward_weights_are_divided_by_their_sum():
    """As DeepMimic does: scaling every weight leaves the reward as it is; weights that cannot be
    normalised are a config error naming the fields."""
    doubled = make_task(*["task.reward.{}_w={}".format(t, 2 * w) for t, w in
                          [("pose", 0.5), ("vel", 0.05), ("end_eff", 0.15), ("root", 0.2), ("com", 0.1)]])
    np.testing.assert_allclose(doubled.reward_weights.numpy(), [0.5, 0.05, 0.15, 0.2, 0.1, 0.0], atol=1e-7)
    with pytest.raises(ValueError, match="task.reward.com_w must be a number >= 0, got -0.1"):
        make_task("task.reward.com_w=-0.1")
    with pytest.raises(ValueError, match="positive sum"):
        make_task(*["task.reward.{}_w=0".format(t) for t in TERMS])


def test_reward_matches_deepmimic_formula_by_hand(task, reward_cfg, diff_weights):
    """Perturbations that touch several terms at once; the errors computed here from DeepMimic's definitions."""
    w = {t: reward_cfg[t + "_w"] for t in TERMS}
    s = {t: reward_cfg[t + "_scale"] for t in TERMS}
    c_pos = reward_cfg["root_pos_coeff"]
    # lifting the whole character by h: the end effectors' heights above the ground (not above
    # the root) are compared, so all four end effectors are off by h, and so is the root
    ref, body_state, dof_vel, com_vel, _ = perturbed(task, "root", [0.0, 0.0])
    h = np.array([0.0, 0.1])
    body_state[:, :, 2] += torch.tensor(h, dtype=torch.float32).unsqueeze(1)
    rew, _ = reward(task, ref, body_state, dof_vel, com_vel)
    num_end_effectors = 4  # both ankles and both wrists
    expected = (1.0 - w["end_eff"] - w["root"] + w["end_eff"] * np.exp(-s["end_eff"] * num_end_effectors * h ** 2)
                + w["root"] * np.exp(-s["root"] * c_pos * h ** 2))
    np.testing.assert_allclose(rew.numpy(), expected, atol=2e-6)
    # root spinning faster than the reference by 2 rad/s: velocity error w_root * 4, root error
    # root_ang_vel_coeff * 4 (DeepMimic counts the root's angular velocity in both)
    ref, body_state, dof_vel, com_vel, _ = perturbed(task, "root", [0.0])
    body_state[:, 0, 12] += 2.0
    rew, _ = reward(task, ref, body_state, dof_vel, com_vel)
    expected = (1.0 - w["vel"] - w["root"] + w["vel"] * np.exp(-s["vel"] * diff_weights["root"] * 4.0)
                + w["root"] * np.exp(-s["root"] * reward_cfg["root_ang_vel_coeff"] * 4.0))
    np.testing.assert_allclose(rew.numpy(), expected, atol=2e-6)
    # DeepMimic's numbers, spelled out for the root: a 0.35 m offset costs 0.2 * (1 - exp(-5 * 0.35^2))
    assert w["root"] == 0.2 and s["root"] == 5.0
    ref, body_state, dof_vel, com_vel, _ = perturbed(task, "root", [0.7])
    rew, terms = reward(task, ref, body_state, dof_vel, com_vel)
    assert terms[0, 3].item() == pytest.approx(math.exp(-5.0 * 0.35 ** 2), abs=1e-6)
    assert rew.item() == pytest.approx(1.0 - 0.2 * (1.0 - math.exp(-5.0 * 0.35 ** 2)), abs=1e-6)


def test_turning_the_character_costs_root_rotation_only(task, reward_cfg, diff_weights):
    """Turning the whole simulated character by a about the vertical through its root: the
    end-effector offsets (each in its character's heading frame) still match; DeepMimic's pose
    error counts the root's world rotation with the root's weight, the root error with
    root_rot_coeff: pose = exp(-2 w_root a^2), root = exp(-5 * 0.1 a^2)."""
    ref = reference(task, 4, seed=5)
    body_state, dof_vel, com_vel = sim_from_ref(ref)
    angle = np.array([0.0, 0.5, 1.0, 2.0])
    rot = Rotation.from_rotvec(np.outer(angle, [0.0, 0.0, 1.0]))
    root = body_state[:, 0:1, 0:3]
    rel = (body_state[..., 0:3] - root).double().numpy()
    turned = np.stack([rot[i].apply(rel[i]) for i in range(4)])
    body_state[..., 0:3] = torch.tensor(turned, dtype=torch.float32) + root
    for b in range(body_state.shape[1]):
        body_state[:, b, 3:7] = rotate_world_z(body_state[:, b, 3:7], angle)
    _, terms = reward(task, ref, body_state, dof_vel, com_vel)
    np.testing.assert_allclose(terms[:, [1, 2, 4]].numpy(), 1.0, atol=1e-5)  # vel, end effectors, com
    pose = np.exp(-reward_cfg["pose_scale"] * diff_weights["root"] * angle ** 2)
    root = np.exp(-reward_cfg["root_scale"] * reward_cfg["root_rot_coeff"] * angle ** 2)
    np.testing.assert_allclose(terms[:, 0].numpy(), pose, atol=1e-5)
    np.testing.assert_allclose(terms[:, 3].numpy(), root, atol=1e-5)

