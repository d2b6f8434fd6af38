"""The hydra configuration's home in code: the resolvers our yaml uses, the env count a run gets
when the command line names none, and the values each numeric or on/off setting allows. train.py,
the task and the IsaacGymEnvs registration use it; nothing here imports torch or an engine, so
IsaacGym can still be imported first."""
import math
import os
from typing import Dict, Iterable, List, Optional, Tuple

from omegaconf import OmegaConf

from poselib_utils.repository import REPO_ROOT

CONFIG_DIR = os.path.join(REPO_ROOT, "cfg")
RUNS_DIR = os.path.join(REPO_ROOT, "runs")  # training runs: checkpoints, summaries, videos

# Env count when the command line gives none: small on the CPU engine, thousands on a GPU engine.
DEFAULT_NUM_ENVS = {"mujoco": 64}
DEFAULT_GPU_NUM_ENVS = 4096


def default_num_envs(engine: str) -> int:
    return DEFAULT_NUM_ENVS.get(engine, DEFAULT_GPU_NUM_ENVS)


def minibatch_size(num_envs, horizon, num_minibatches) -> int:
    """rl_games' minibatch in samples: one epoch's samples split into ``num_minibatches``."""
    return max(1, int(num_envs) * int(horizon) // int(num_minibatches))


RESOLVERS = {
    "resolve_default": lambda default, arg: default if arg in ("", None) else arg,
    "if": lambda pred, a, b: a if pred else b,
    "minibatch": minibatch_size,
}


def register_resolvers() -> None:
    """Register those of ``RESOLVERS`` not yet registered (IsaacGymEnvs registers its own
    ``if`` and ``resolve_default``, with the same meaning)."""
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


class SettingError(ValueError):
    """A setting outside what it allows; the message names the setting, what it allows and the value."""


class Allowed:
    """The values one setting allows: on/off, a number or a whole number (or a list of them), between
    bounds (``above``: strictly above ``low``); ``blank`` also lets it be '' ("use the default")."""

    def __init__(self, kind: str, low: Optional[float] = None, high: Optional[float] = None,
                 above: bool = False, blank: bool = False, listed: bool = False, empty: bool = False):
        self.kind, self.low, self.high, self.above, self.blank = kind, low, high, above, blank
        self.listed, self.empty = listed, empty  # a list of such values; may it be empty?

    def describe(self) -> str:
        if self.kind == "bool":
            return "True or False"
        noun = {"whole": "whole number", "number": "number"}[self.kind]
        if self.low is not None and self.high is not None:
            bounds = "from {} to {}".format(_shown(self.low), _shown(self.high))
        elif self.low is not None:
            bounds = "{} {}".format(">" if self.above else ">=", _shown(self.low))
        else:
            bounds = ""
        if self.listed:
            what = "a {}list of {}s{}".format("" if self.empty else "non-empty ", noun, ", each " + bounds if bounds else "")
        else:
            what = "a {} {}".format(noun, bounds) if bounds else "a finite " + noun
        return what + (", or '' for the default" if self.blank else "")

    def fits(self, value) -> bool:
        if self.blank and value in ("", None):
            return True
        if self.listed:
            return isinstance(value, (list, tuple)) and (self.empty or len(value) > 0) and all(self._fits_one(v) for v in value)
        return self._fits_one(value)

    def _fits_one(self, value) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "whole" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


# DeepMimic's reward terms (each with a weight ``<term>_w`` and a scale ``<term>_scale``) and the
# coefficients of the root term's error; the task (tasks/humanoid_deepmimic.py) reads them in this order.
REWARD_TERMS = ("pose", "vel", "end_eff", "root", "com", "body_pos")
ROOT_ERROR_COEFFS = ("root_pos_coeff", "root_rot_coeff", "root_vel_coeff", "root_ang_vel_coeff")

ON_OFF = Allowed("bool")
POSITIVE = Allowed("number", 0, above=True)
NON_NEGATIVE = Allowed("number", 0)
COUNT = Allowed("whole", 1)
FRACTION = Allowed("number", 0, 1)

# The task's settings, as paths inside the task config (shown to the user under ``task.``).
TASK_SETTINGS = (
    ("env.num_envs", COUNT),
    ("env.num_threads", Allowed("whole", 0)),
    ("env.sim_freq_hz", POSITIVE),
    ("env.control_freq_hz", POSITIVE),
    ("env.episode_length_s", POSITIVE),
    ("env.enable_early_termination", ON_OFF),
    ("env.evaluation", ON_OFF),
    ("env.evaluation_horizon_s", POSITIVE),
    ("env.contact_force_threshold", NON_NEGATIVE),
    ("env.termination_distance", POSITIVE),
    ("env.clip_actions", POSITIVE),
    ("env.clip_observations", POSITIVE),
    ("env.cuda_graph_step", ON_OFF),
    ("env.carry_cycle_heading", ON_OFF),
    ("env.push.force_n", NON_NEGATIVE),
    ("env.push.direction_deg", Allowed("number", -360, 360)),
    ("env.push.at_s", NON_NEGATIVE),
    ("env.push.duration_s", POSITIVE),
    ("env.push.spread_s", NON_NEGATIVE),
    ("env.push.random_max_n", NON_NEGATIVE),
    ("env.push.random_rate_hz", NON_NEGATIVE),
    ("env.obs.phase", ON_OFF),
    ("env.obs.target_frames", Allowed("whole", 1, listed=True, empty=True)),
) + tuple(("reward." + term + suffix, NON_NEGATIVE) for term in REWARD_TERMS for suffix in ("_w", "_scale")) \
  + tuple(("reward." + coeff, NON_NEGATIVE) for coeff in ROOT_ERROR_COEFFS + ("com_vel_coeff",))

# train.py's own settings and rl_games' PPO settings, as paths in the top-level config.
RUN_SETTINGS = (
    ("seed", Allowed("whole", 0, 2 ** 31 - 1)),
    ("num_envs", Allowed("whole", 1, blank=True)),
    ("max_iterations", Allowed("whole", 1, blank=True)),
    ("num_test_games", COUNT),
    ("capture_video_freq", COUNT),
    ("capture_video_len", COUNT),
    ("graphics_device_id", Allowed("whole", -1)),
    ("test", ON_OFF), ("headless", ON_OFF), ("multi_gpu", ON_OFF), ("capture_video", ON_OFF),
    ("torch_deterministic", ON_OFF), ("wandb_activate", ON_OFF),
    ("train.params.network.mlp.units", Allowed("whole", 1, listed=True)),
    ("train.params.config.max_epochs", COUNT),
    ("train.params.config.horizon_length", COUNT),
    ("train.params.config.mini_epochs", COUNT),
    ("train.params.config.minibatch_size", COUNT),
    ("train.params.config.seq_length", COUNT),
    ("train.params.config.gamma", FRACTION),
    ("train.params.config.tau", FRACTION),
    ("train.params.config.learning_rate", POSITIVE),
    ("train.params.config.kl_threshold", POSITIVE),
    ("train.params.config.e_clip", POSITIVE),
    ("train.params.config.grad_norm", POSITIVE),
    ("train.params.config.entropy_coef", NON_NEGATIVE),
    ("train.params.config.critic_coef", NON_NEGATIVE),
    ("train.params.config.bounds_loss_coef", NON_NEGATIVE),
    ("train.params.config.save_frequency", Allowed("whole", 0)),
    ("train.params.config.save_best_after", Allowed("whole", 0)),
)


def _setting_problems(cfg, rules: Iterable[Tuple[str, Allowed]], shown_prefix: str) -> List[str]:
    problems = []
    for path, allowed in rules:
        try:
            value = OmegaConf.select(cfg, path) if OmegaConf.is_config(cfg) else _select(cfg, path)
        except Exception as err:  # an interpolation whose inputs are bad: the message says which
            problems.append("{}{} could not be worked out: {}".format(shown_prefix, path, str(err).splitlines()[0]))
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
        if not allowed.fits(value):
            problems.append("{}{} must be {}, got {!r}".format(shown_prefix, path, allowed.describe(), value))
    return problems


def _select(tree, path: str):
    for key in path.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def physics_substeps(sim_freq: float, control_freq: float) -> int:
    """Physics steps per policy step; SettingError unless the physics rate is a whole multiple of the policy rate."""
    substeps = sim_freq / control_freq if control_freq > 0 else 0.0
    if substeps < 1 or abs(substeps - round(substeps)) > 1e-6:
        raise SettingError("task.env.sim_freq_hz ({}) must be a whole multiple of task.env.control_freq_hz ({})".format(
            sim_freq, control_freq))
    return int(round(substeps))


def check_task_settings(task_cfg) -> None:
    """Every task setting within what it allows (``task_cfg``: the task's config, a dict or DictConfig);
    SettingError naming the first that is not. The task runs it before it builds anything."""
    problems = _setting_problems(task_cfg, TASK_SETTINGS, "task.")
    if problems:
        raise SettingError(problems[0])
    env, reward = task_cfg["env"], task_cfg["reward"]
    physics_substeps(float(env["sim_freq_hz"]), float(env["control_freq_hz"]))
    check_goal_settings(env)
    weights = [term + "_w" for term in REWARD_TERMS]
    if sum(float(reward[w]) for w in weights) <= 0:
        raise SettingError("task.reward: the term weights ({}) must have a positive sum, got all 0".format(", ".join(weights)))


GOAL_KINDS = ("none", "heading", "strike")  # tasks/goals.py
GOAL_SETTINGS = {"heading": (("imitation_weight", FRACTION), ("speed_mps", NON_NEGATIVE), ("speed_scale", POSITIVE),
                             ("change_rate_hz", NON_NEGATIVE), ("max_turn_deg", Allowed("number", 0, 180))),
                 "strike": (("imitation_weight", FRACTION), ("distance_m", Allowed("number", 0, listed=True)),
                            ("height_m", Allowed("number", 0, listed=True)),
                            ("bearing_deg", Allowed("number", -360, 360, listed=True)), ("radius_m", POSITIVE),
                            ("distance_scale", POSITIVE))}


def check_goal_settings(env) -> None:
    """task.env.goal: a known kind, and that kind's settings within what they allow."""
    goal = env.get("goal") or {}
    kind = goal.get("kind", "none")
    if kind not in GOAL_KINDS:
        raise SettingError("task.env.goal.kind must be one of {}, got {!r}".format(", ".join(GOAL_KINDS), kind))
    rules = GOAL_SETTINGS.get(kind, ())
    problems = _setting_problems(goal, rules, "task.env.goal.")
    for key, rule in rules:  # ranges: [low, high]
        value = OmegaConf.to_container(goal[key]) if OmegaConf.is_config(goal[key]) else goal[key]
        if rule.listed and not problems and (len(value) != 2 or value[0] > value[1]):
            problems.append("task.env.goal.{} must be a range [low, high] with low <= high, got {!r}".format(key, value))
    if problems:
        raise SettingError(problems[0])


def check_run_settings(cfg) -> None:
    """train.py's and rl_games' settings (``cfg``: the composed top-level config), then the task's;
    SettingError naming the first outside what it allows. rl_games would otherwise fail on these only
    after the task is built, or (max_iterations=-1) train forever."""
    problems = _setting_problems(cfg, RUN_SETTINGS, "")
    if problems:
        raise SettingError(problems[0])
    check_task_settings(cfg.task)
    ppo = cfg.train.params.config
    search = OmegaConf.select(cfg, PUSH_SEARCH)
    if search:
        check_push_search(OmegaConf.to_container(search) if OmegaConf.is_config(search) else search)
    batch = int(cfg.task.env.num_envs) * int(ppo.horizon_length)
    if batch % int(ppo.minibatch_size):
        raise SettingError("train.params.config.minibatch_size ({}) must divide num_envs x horizon_length ({} x {} = {})"
                           .format(ppo.minibatch_size, cfg.task.env.num_envs, ppo.horizon_length, batch))


PUSH_SEARCH = "train.params.config.player.push_search"
PUSH_SEARCH_DEFAULTS = {"survival": 1.0, "start_n": 50.0, "resolution_n": 10.0, "max_n": 5000.0}
PUSH_SEARCH_SETTINGS = (("survival", FRACTION), ("start_n", POSITIVE), ("resolution_n", POSITIVE), ("max_n", POSITIVE),
                        ("directions_deg", Allowed("number", -360, 360, listed=True)))


def check_push_search(settings) -> Dict:
    """The push search's settings (tasks/rlgames/push_search.py) with its defaults filled in;
    SettingError naming the first unknown or out-of-range one."""
    known = [key for key, _ in PUSH_SEARCH_SETTINGS]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise SettingError("{}: unknown setting {}; allowed: {}".format(PUSH_SEARCH, ", ".join(unknown), ", ".join(known)))
    merged = dict(PUSH_SEARCH_DEFAULTS, **settings)
    problems = _setting_problems({"push_search": merged}, [("push_search." + k, rule) for k, rule in PUSH_SEARCH_SETTINGS],
                                 "train.params.config.player.")
    if problems:
        raise SettingError(problems[0])
    return merged
