"""Other projects' skeletons as data: how the nodes of a poselib motion file map onto our character.

A map (``poselib_utils/skeletons/<name>.yaml``) names the MJCF character it maps onto, lists the
file's nodes in the file's order with the character joint (MJCF body) each one is, and gives the
rest rotation of any node whose rest frame differs from that body's (``[x, y, z, w]``: the node's
rest frame expressed in the body's). Reading a file, the map whose node list equals the file's is
chosen; ``--skeleton <name>`` names one.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import DataFormatError
from poselib_utils.repository import repo_path

SKELETONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skeletons")


@dataclass(frozen=True)
class SkeletonMap:
    name: str
    path: str
    character: str  # the MJCF (absolute path) whose joints the nodes are
    nodes: tuple  # the file's node names, in the file's order
    joints: tuple  # the character joint of each node
    rest_rotations: Dict[str, Rotation]  # node -> its rest frame in its body's; absent: the same

    def rest_rotation(self, node: str) -> Rotation:
        return self.rest_rotations.get(node, Rotation.identity())

    def node_of(self, joint: str) -> str:
        return self.nodes[self.joints.index(joint)]


def load_skeleton_map(path: str) -> SkeletonMap:
    """Read and check one map file; DataFormatError naming the file and field otherwise."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise DataFormatError(path, "", "unreadable skeleton map: {}".format(err))
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise DataFormatError(path, "nodes", "a skeleton map needs a non-empty 'nodes' list of {file node: joint}")
    nodes, joints = [], []
    for i, entry in enumerate(data["nodes"]):
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise DataFormatError(path, "nodes[{}]".format(i), "expected one 'file node: joint' pair, got {!r}".format(entry))
        (node, joint), = entry.items()
        nodes.append(str(node))
        joints.append(str(joint))
    for label, names in (("file node", nodes), ("joint", joints)):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise DataFormatError(path, "nodes", "{}s {} appear more than once".format(label, repeated))
    rest = {}
    for node, quat in (data.get("rest_rotations") or {}).items():
        if node not in nodes:
            raise DataFormatError(path, "rest_rotations", "'{}' is not one of the nodes".format(node))
        q = np.asarray(quat, dtype=np.float64)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or abs(np.linalg.norm(q) - 1.0) > 1e-3:
            raise DataFormatError(path, "rest_rotations." + str(node), "expected a unit quaternion [x, y, z, w], "
                                  "got {!r}".format(quat))
        rest[str(node)] = Rotation.from_quat(q)
    character = data.get("character")
    if not isinstance(character, str):
        raise DataFormatError(path, "character", "name the MJCF the nodes map onto, e.g. assets/mjcf/humanoid3d.xml")
    name = os.path.splitext(os.path.basename(path))[0]
    return SkeletonMap(name, path, os.path.abspath(repo_path(character)), tuple(nodes), tuple(joints), rest)


def known_skeleton_maps() -> Dict[str, SkeletonMap]:
    """Every map in ``poselib_utils/skeletons/``, by name."""
    maps = {}
    for entry in sorted(os.listdir(SKELETONS_DIR)):
        if entry.endswith(".yaml"):
            found = load_skeleton_map(os.path.join(SKELETONS_DIR, entry))
            maps[found.name] = found
    return maps


def skeleton_map_named(name: str) -> SkeletonMap:
    """A known map by name, or a map file of one's own by its path (``.yaml``)."""
    if name.endswith(".yaml") and os.path.isfile(name):
        return load_skeleton_map(name)
    maps = known_skeleton_maps()
    if name not in maps:
        raise DataFormatError(SKELETONS_DIR, "--skeleton", "unknown skeleton '{}'; known: {}".format(
            name, ", ".join(sorted(maps))))
    return maps[name]


def find_skeleton_map(node_names: Sequence[str], mjcf_path: str) -> Optional[SkeletonMap]:
    """The known map onto the character ``mjcf_path`` whose nodes are ``node_names``, in that order."""
    for found in known_skeleton_maps().values():
        if list(found.nodes) == list(node_names) and os.path.samefile(found.character, mjcf_path):
            return found
    return None


def closest_skeleton_map(node_names: Sequence[str]) -> Optional[SkeletonMap]:
    """The known map sharing the most node names with ``node_names`` (for the error message)."""
    scored: List = [(len(set(m.nodes) & set(node_names)), m) for m in known_skeleton_maps().values()]
    scored = [s for s in scored if s[0] > 0]
    return max(scored, key=lambda s: s[0])[1] if scored else None


class NodeLayout:
    """A file's nodes on a character with joints ``joint_names`` (parents ``joint_parents``): the file
    index of each joint, and the change of rest frame. With a node's rest frame R in its body's, a
    node's local rotation is ``R_parent^-1 * q * R`` of its joint's ``q``, and its offset from its
    parent ``R_parent^-1 * t``; positions and world velocities are the same points and vectors."""

    def __init__(self, joint_names: Sequence[str], joint_parents: Sequence[int],
                 skeleton_map: Optional[SkeletonMap] = None):
        self.skeleton_map = skeleton_map
        names = list(joint_names)
        if skeleton_map is None:
            self.node_names = names
            self.order = np.arange(len(names))
            self.rest = [Rotation.identity() for _ in names]
        else:
            missing = sorted(set(names) - set(skeleton_map.joints))
            unknown = sorted(set(skeleton_map.joints) - set(names))
            if missing or unknown:
                raise DataFormatError(skeleton_map.path, "nodes", "maps onto joints {} that the character does not have "
                                      "and misses its joints {}".format(unknown, missing))
            self.node_names = list(skeleton_map.nodes)
            self.order = np.array([skeleton_map.joints.index(n) for n in names])
            self.rest = [skeleton_map.rest_rotation(skeleton_map.node_of(n)) for n in names]
        self.joint_parents = np.asarray(joint_parents, dtype=np.int64)
        node_parents = np.full(len(names), -1, dtype=np.int64)
        for j, p in enumerate(self.joint_parents):
            node_parents[self.order[j]] = -1 if p < 0 else self.order[p]
        self.node_parents = node_parents

    def _parent_rest(self, j: int) -> Rotation:
        p = self.joint_parents[j]
        return Rotation.identity() if p < 0 else self.rest[p]

    def rotations_to_joints(self, node_rots: np.ndarray) -> np.ndarray:
        """Local rotations [F, N, 4] (xyzw) of the file's nodes -> the joints' [F, J, 4]."""
        out = np.empty(node_rots.shape[:1] + (len(self.order), 4))
        for j, n in enumerate(self.order):
            q = Rotation.from_quat(node_rots[:, n])
            out[:, j] = (self._parent_rest(j) * q * self.rest[j].inv()).as_quat()
        return out

    def rotations_to_nodes(self, joint_rots: np.ndarray) -> np.ndarray:
        out = np.empty_like(joint_rots)
        for j, n in enumerate(self.order):
            q = Rotation.from_quat(joint_rots[:, j])
            out[:, n] = (self._parent_rest(j).inv() * q * self.rest[j]).as_quat()
        return out

    def offsets_to_joints(self, node_offsets: np.ndarray) -> np.ndarray:
        """Offsets from the parent [N, 3], in the parent node's frame -> in the parent body's [J, 3]."""
        return np.stack([self._parent_rest(j).apply(node_offsets[n]) for j, n in enumerate(self.order)])

    def offsets_to_nodes(self, joint_offsets: np.ndarray) -> np.ndarray:
        out = np.empty_like(joint_offsets)
        for j, n in enumerate(self.order):
            out[n] = self._parent_rest(j).inv().apply(joint_offsets[j])
        return out

    def values_to_nodes(self, joint_values: np.ndarray) -> np.ndarray:
        """Per-joint world-frame values [F, J, ...] (positions, velocities) in node order."""
        out = np.empty_like(joint_values)
        out[:, self.order] = joint_values
        return out
