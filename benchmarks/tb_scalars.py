"""Print tensorboard scalars of a run as CSV (tag,step,value), reading the event files with tensorboardX's
protobufs only (rl_games' own dependency), e.g. to compare learning curves per sample:

    python benchmarks/tb_scalars.py runs/<experiment>/summaries rewards/step episode_lengths/step
"""
import glob
import os
import struct
import sys

from tensorboardX.proto import event_pb2


def read_scalars(summaries_dir, tags):
    rows = []
    for path in sorted(glob.glob(os.path.join(summaries_dir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            while True:
                header = f.read(12)  # uint64 length, uint32 crc of the length
                if len(header) < 12:
                    break
                (length,) = struct.unpack("<Q", header[:8])
                data = f.read(length)
                f.read(4)  # crc of the data
                event = event_pb2.Event.FromString(data)
                for value in event.summary.value:
                    if value.tag in tags:
                        rows.append((value.tag, event.step, value.simple_value))
    return rows


if __name__ == "__main__":
    print("tag,step,value")
    for tag, step, value in read_scalars(sys.argv[1], set(sys.argv[2:])):
        print("{},{},{}".format(tag, step, value))
