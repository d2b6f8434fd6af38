"""A small BVH (Biovision Hierarchy) reader and writer.

BVH: ``HIERARCHY`` with nested ``ROOT``/``JOINT``/``End Site`` blocks (``OFFSET x y z`` in the
parent's frame, ``CHANNELS n <names>``), then ``MOTION``, ``Frames: N``, ``Frame Time: dt`` and N
lines of channel values. A joint's local rotation is the product of its rotation channels in file
order (``Zrotation Xrotation Yrotation`` means R = Rz Rx Ry, degrees); position channels replace
the matching components of the joint's offset. Written here rather than taken from PyPI: the
maintained parsers need Python >= 3.9 or PyGLM/matplotlib, and this project targets 3.8.
"""
import os
from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import DataFormatError

ROTATION_CHANNELS = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
POSITION_CHANNELS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}


@dataclass
class BvhMotion:
    path: str
    names: List[str]
    parents: np.ndarray  # [J], -1 for the root
    offsets: np.ndarray  # [J, 3], file units, parent frame
    channels: List[List[str]]  # per joint
    end_sites: List[List[np.ndarray]]  # per joint: offsets of its End Sites
    frame_time: float  # s
    values: np.ndarray  # [F, total channels]

    @property
    def num_frames(self) -> int:
        return self.values.shape[0]

    def channel_slices(self) -> List[slice]:
        out, col = [], 0
        for ch in self.channels:
            out.append(slice(col, col + len(ch)))
            col += len(ch)
        return out

    def local_transforms(self):
        """Per joint: local translations [F, 3] and local rotations (``Rotation`` of F)."""
        trans, rots = [], []
        for j, (ch, sl) in enumerate(zip(self.channels, self.channel_slices())):
            vals = self.values[:, sl]
            t = np.repeat(self.offsets[j][None], self.num_frames, axis=0)
            order, angles = "", []
            for k, name in enumerate(ch):
                if name in POSITION_CHANNELS:
                    t[:, POSITION_CHANNELS[name]] = vals[:, k]
                else:
                    order += ROTATION_CHANNELS[name]
                    angles.append(vals[:, k])
            rots.append(Rotation.from_euler(order, np.stack(angles, axis=1), degrees=True) if order
                        else Rotation.identity(self.num_frames))
            trans.append(t)
        return trans, rots


def _error(path, line_no, message):
    return DataFormatError(path, "line {}".format(line_no), message)


def load_bvh(path: str) -> BvhMotion:
    """Read a BVH file; any defect is a ``DataFormatError`` naming the file and the line or section."""
    if not os.path.isfile(path):
        raise DataFormatError(path, "", "file not found")
    with open(path, "r", errors="replace") as f:
        lines = f.read().splitlines()
    tokens, motion_line = _hierarchy_tokens(path, lines)
    joints = _HierarchyParser(path, tokens).parse()
    num_frames, frame_time, first_frame_row = _motion_header(path, lines, motion_line)
    width = sum(len(c) for c in joints.channels)
    values = _frame_values(path, lines, first_frame_row, width, num_frames)
    return BvhMotion(path, joints.names, np.array(joints.parents), np.stack(joints.offsets), joints.channels,
                     joints.end_sites, frame_time, values)


def _hierarchy_tokens(path, lines):
    """The HIERARCHY section's tokens as (line number, token), braces split off so that ``Hips{``
    reads as two tokens, and the index of the ``MOTION`` line."""
    tokens = []
    motion_line = None
    for i, line in enumerate(lines):
        if line.strip().upper() == "MOTION":
            motion_line = i
            break
        tokens += [(i + 1, tok) for tok in line.replace("{", " { ").replace("}", " } ").split()]
    if not tokens or tokens[0][1].upper() != "HIERARCHY":
        raise DataFormatError(path, "line 1", "not a BVH file: expected 'HIERARCHY'")
    if motion_line is None:
        raise DataFormatError(path, "", "no 'MOTION' section")
    return tokens, motion_line


@dataclass
class _Hierarchy:
    """The joints read from HIERARCHY, in file order (an offset or channel list is None until read)."""
    names: List[str] = field(default_factory=list)
    parents: List[int] = field(default_factory=list)
    offsets: List[np.ndarray] = field(default_factory=list)
    channels: List[List[str]] = field(default_factory=list)
    end_sites: List[List[np.ndarray]] = field(default_factory=list)


class _HierarchyParser:
    """One pass over the HIERARCHY tokens. Open blocks are kept on a stack of joint indices; an
    End Site block of joint j is pushed as ``-2 - j``, so that it is negative (no CHANNELS, no
    child joints) and still tells which joint its OFFSET belongs to."""

    def __init__(self, path, tokens):
        self.path, self.tokens = path, tokens
        self.next_token = 1  # past 'HIERARCHY'
        self.stack: List[int] = []  # open blocks: joint j, or -2 - j for an End Site of joint j
        self.pending = None  # ("joint", name) or ("end", None): a block header awaiting its '{'
        self.joints = _Hierarchy()

    def parse(self) -> _Hierarchy:
        while self.next_token < len(self.tokens):
            line_no, tok = self._take(1)[0]
            key = tok.upper()
            if key in ("ROOT", "JOINT"):
                if (key == "ROOT") != (not self.stack and not self.joints.names):
                    raise _error(self.path, line_no, "{} outside its place (one ROOT, JOINTs inside it)".format(tok))
                self.pending = ("joint", self._take(1)[0][1])
            elif key == "END":
                self._take(1)
                self.pending = ("end", None)
            elif tok == "{":
                self._open_block(line_no)
            elif tok == "}":
                self._close_block(line_no)
            elif key == "OFFSET":
                self._read_offset(line_no)
            elif key == "CHANNELS":
                self._read_channels(line_no)
            else:
                raise _error(self.path, line_no, "unexpected '{}'".format(tok))
        if self.stack or not self.joints.names:
            raise DataFormatError(self.path, "HIERARCHY", "unbalanced braces or no joints")
        return self.joints

    def _take(self, n):
        """The next n tokens; running out is an error at the last line of HIERARCHY."""
        if self.next_token + n > len(self.tokens):
            raise _error(self.path, self.tokens[-1][0], "unexpected end of HIERARCHY")
        out = self.tokens[self.next_token:self.next_token + n]
        self.next_token += n
        return out

    def _open_block(self, line_no):
        if self.pending is None:
            raise _error(self.path, line_no, "'{' without ROOT/JOINT/End Site")
        if self.pending[0] == "joint":
            joints = self.joints
            joints.names.append(self.pending[1])
            joints.parents.append(self.stack[-1] if self.stack else -1)
            joints.offsets.append(None)
            joints.channels.append(None)
            joints.end_sites.append([])
            self.stack.append(len(joints.names) - 1)
        else:
            if not self.stack or self.stack[-1] < 0:
                raise _error(self.path, line_no, "End Site outside a joint")
            self.stack.append(-2 - self.stack[-1])
        self.pending = None

    def _close_block(self, line_no):
        if not self.stack:
            raise _error(self.path, line_no, "unbalanced '}'")
        j = self.stack.pop()
        if j >= 0 and self.joints.channels[j] is None:
            raise _error(self.path, line_no, "joint '{}' has no CHANNELS line (missing channels)".format(
                self.joints.names[j]))
        if j >= 0 and self.joints.offsets[j] is None:
            raise _error(self.path, line_no, "joint '{}' has no OFFSET".format(self.joints.names[j]))

    def _read_offset(self, line_no):
        vals = self._take(3)
        try:
            off = np.array([float(v) for _, v in vals])
        except ValueError:
            raise _error(self.path, line_no, "OFFSET needs 3 numbers")
        if not self.stack:
            raise _error(self.path, line_no, "OFFSET outside a joint")
        if self.stack[-1] >= 0:
            self.joints.offsets[self.stack[-1]] = off
        else:
            self.joints.end_sites[-2 - self.stack[-1]].append(off)

    def _read_channels(self, line_no):
        if not self.stack or self.stack[-1] < 0:
            raise _error(self.path, line_no, "CHANNELS outside a joint")
        try:
            n = int(self._take(1)[0][1])
        except ValueError:
            raise _error(self.path, line_no, "CHANNELS needs a count")
        chans = [t for _, t in self._take(n)]
        bad = [c for c in chans if c not in ROTATION_CHANNELS and c not in POSITION_CHANNELS]
        if bad:
            raise _error(self.path, line_no, "joint '{}': unknown channels {}".format(
                self.joints.names[self.stack[-1]], bad))
        self.joints.channels[self.stack[-1]] = chans


def _motion_header(path, lines, motion_line):
    """``Frames: N`` and ``Frame Time: dt`` (the first two non-blank lines after ``MOTION``), checked,
    and the index of the line after them, where the frames start."""
    header = {}
    row = motion_line + 1
    while row < len(lines) and len(header) < 2:
        text = lines[row].strip()
        if text:
            key, _, value = text.partition(":")
            header[key.strip().lower()] = (row + 1, value.strip())
        row += 1
    try:
        num_frames = int(header["frames"][1])
        frame_time = float(header["frame time"][1])
    except (KeyError, ValueError):
        raise DataFormatError(path, "MOTION", "needs 'Frames: N' and 'Frame Time: dt'")
    if num_frames < 2:
        raise DataFormatError(path, "MOTION", "zero-length clip: {} frames (at least 2 needed)".format(num_frames))
    if not frame_time > 0:
        raise DataFormatError(path, "MOTION", "'Frame Time' must be positive, got {}".format(frame_time))
    return num_frames, frame_time, row


def _frame_values(path, lines, first_row, width, num_frames) -> np.ndarray:
    """The channel values [num_frames, width] from ``first_row`` on; blank lines are skipped."""
    data = []
    for i in range(first_row, len(lines)):
        if not lines[i].strip():
            continue
        try:
            vals = [float(v) for v in lines[i].split()]
        except ValueError:
            raise _error(path, i + 1, "frame {}: not all numbers".format(len(data)))
        if len(vals) != width:
            raise _error(path, i + 1, "frame {} has {} values, the channels need {}".format(
                len(data), len(vals), width))
        data.append(vals)
    if len(data) != num_frames:
        raise DataFormatError(path, "MOTION", "header says {} frames, file has {}".format(num_frames, len(data)))
    values = np.array(data, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise DataFormatError(path, "MOTION", "frame {} has a non-finite value".format(
            int(np.argmin(np.isfinite(values).all(axis=1)))))
    return values


def write_bvh(path: str, names: Sequence[str], parents: Sequence[int], offsets: np.ndarray, root_pos: np.ndarray,
              local_rots: Sequence[Rotation], frame_time: float, order: str = "ZXY", end_sites=None) -> None:
    """Write a BVH: the root with 6 channels, every other joint 3 rotation channels in ``order``."""
    rot_ch = ["{}rotation".format(a) for a in order]
    lines = ["HIERARCHY"]

    def emit(j, depth):
        pad = "  " * depth
        lines.append("{}{} {}".format(pad, "ROOT" if parents[j] < 0 else "JOINT", names[j]))
        lines.append(pad + "{")
        lines.append("{}  OFFSET {:.6f} {:.6f} {:.6f}".format(pad, *offsets[j]))
        ch = (["Xposition", "Yposition", "Zposition"] if parents[j] < 0 else []) + rot_ch
        lines.append("{}  CHANNELS {} {}".format(pad, len(ch), " ".join(ch)))
        for c in [c for c in range(len(names)) if parents[c] == j]:
            emit(c, depth + 1)
        for site in (end_sites or {}).get(j, []):
            lines.extend([pad + "  End Site", pad + "  {", "{}    OFFSET {:.6f} {:.6f} {:.6f}".format(pad, *site),
                          pad + "  }"])
        lines.append(pad + "}")

    emit(int(np.argmin(parents)), 0)
    num = root_pos.shape[0]
    cols = []
    order_of = [int(j) for j in _dfs_order(parents)]
    for j in order_of:
        if parents[j] < 0:
            cols.append(root_pos)
        cols.append(local_rots[j].as_euler(order, degrees=True))
    data = np.concatenate(cols, axis=1)
    lines += ["MOTION", "Frames: {}".format(num), "Frame Time: {:.8f}".format(frame_time)]
    lines += [" ".join("{:.6f}".format(v) for v in row) for row in data]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _dfs_order(parents):
    out = []

    def visit(j):
        out.append(j)
        for c in range(len(parents)):
            if parents[c] == j:
                visit(c)

    visit(int(np.argmin(parents)))
    return out
