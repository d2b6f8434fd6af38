"""Fetch the third-party BVH files that tests/test_bvh_third_party.py reads.

    python tests/third_party_data.py

Real mocap, not written by this project: the two sample files in the tests of the bvhtoolbox
0.1.3 sdist (MIT) on the package index. Their own provenance is unattributed, so they are never
committed; pip fetches the sdist from the configured index into tests/.third_party/ (git-ignored)
and the two files are extracted beside it. The sdist is pinned by its sha256: pip checks it
(--require-hashes) before it runs the sdist's setup.py for metadata; nothing is built or
installed. Does nothing when the files are there; exits non-zero, saying why, when it fails.
"""
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile

THIRD_PARTY = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".third_party")
REQUIREMENT = "bvhtoolbox==0.1.3"
SDIST = "bvhtoolbox-0.1.3.tar.gz"
SDIST_SHA256 = "2d9dcae87cd6bfa28c89463450de84497e612682ca0697ea088fc7f2ef0f937f"
BVH_DIR = os.path.join(THIRD_PARTY, "bvhtoolbox-0.1.3")
MEMBER_DIR = "bvhtoolbox-0.1.3/tests/example_files/"
BVH_FILES = ("test_mocapbank.bvh", "test_freebvh.bvh")


def present() -> bool:
    return all(os.path.isfile(os.path.join(BVH_DIR, f)) for f in BVH_FILES)


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fetch() -> None:
    cache = os.path.join(THIRD_PARTY, "downloads")
    os.makedirs(cache, exist_ok=True)  # makes THIRD_PARTY too
    sdist = os.path.join(cache, SDIST)
    with tempfile.TemporaryDirectory(dir=THIRD_PARTY) as tmp:  # on BVH_DIR's file system: os.replace
        req = os.path.join(tmp, "requirements.txt")
        with open(req, "w") as f:
            f.write("{} --hash=sha256:{}\n".format(REQUIREMENT, SDIST_SHA256))
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
               "-r", req, "-d", cache]
        if subprocess.call(cmd) != 0:
            sys.exit("third_party_data: pip could not download {} with sha256 {} (network, index or hash; pip's "
                     "message is above)".format(REQUIREMENT, SDIST_SHA256))
        if sha256(sdist) != SDIST_SHA256:  # the file opened below, whatever pip found in the cache
            sys.exit("third_party_data: {} has sha256 {}, expected {}".format(sdist, sha256(sdist), SDIST_SHA256))
        with tarfile.open(sdist, "r:gz") as tar:
            members = set(tar.getnames())
            for name in BVH_FILES:
                src = tar.extractfile(MEMBER_DIR + name) if MEMBER_DIR + name in members else None
                if src is None:
                    sys.exit("third_party_data: {} has no file {}".format(sdist, MEMBER_DIR + name))
                with open(os.path.join(tmp, name), "wb") as out:
                    out.write(src.read())
        os.makedirs(BVH_DIR, exist_ok=True)
        for name in BVH_FILES:  # a file appears whole or not at all
            os.replace(os.path.join(tmp, name), os.path.join(BVH_DIR, name))


def main() -> None:
    if present():
        print("third_party_data: {} already there".format(BVH_DIR))
        return
    fetch()
    print("third_party_data: extracted {} into {}".format(", ".join(BVH_FILES), BVH_DIR))


if __name__ == "__main__":
    main()
