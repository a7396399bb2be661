"""Crash test of the store: crash_driver makes random changes (append, flags, copy, expunge) and
is killed with SIGKILL at random moments. After each kill fsck must find no damage; then the
store is reopened and must hold every acknowledged change, and of the changes not yet
acknowledged only a prefix per mailbox (nothing half-visible), with every message's bytes intact.

Every third cycle also runs a compaction and kills it at a random moment: it must change nothing
a client could see, and fsck must stay clean.

RINGMAIL_CRASH_CYCLES sets the number of kill cycles (default 40); the closing note reports a
long run. Every cycle is bounded in time.
"""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

BIN_DIR = os.environ.get("RINGMAIL_BIN_DIR", "../../build")
DRIVER = os.path.join(BIN_DIR, "tests", "crash_driver")
CYCLES = int(os.environ.get("RINGMAIL_CRASH_CYCLES", "40"))


def resolve(ops, state):
    """Applies ops in order to a copy of `state`; returns, per mailbox, the effects in order."""
    state = {box: dict(msgs) for box, msgs in state.items()}
    effects = {}
    for op in ops:
        kind = op[0]
        if kind == "A":
            box, uid, size, seed = int(op[1]), int(op[2]), int(op[3]), int(op[4])
            eff = ("add", uid, (0, size, seed))
        elif kind == "F":
            box, uid, flags = int(op[1]), int(op[2]), int(op[3])
            _, size, seed = state[box][uid]
            eff = ("add", uid, (flags, size, seed))
        elif kind == "C":
            src, uid, box, new_uid = int(op[1]), int(op[2]), int(op[3]), int(op[4])
            eff = ("add", new_uid, state[src][uid])
        elif kind == "X":
            box, uid = int(op[1]), int(op[2])
            eff = ("del", uid, None)
        else:
            raise AssertionError(f"unknown op {op}")
        msgs = state.setdefault(box, {})
        if eff[0] == "add":
            msgs[eff[1]] = eff[2]
        else:
            del msgs[eff[1]]
        effects.setdefault(box, []).append(eff)
    return effects


def apply_effects(msgs, effects):
    msgs = dict(msgs)
    for kind, uid, value in effects:
        if kind == "add":
            msgs[uid] = value
        else:
            del msgs[uid]
    return msgs


class StorageCrashTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringmail-crash-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def dump(self):
        out = subprocess.run([DRIVER, "dump", self.dir], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        state, usage = {}, None
        for line in out.stdout.splitlines():
            self.assertFalse(line.startswith("DAMAGE"), line)
            f = line.split()
            if f[0] == "R":
                box, uid, flags, size, seed = map(int, f[1:])
                state.setdefault(box, {})[uid] = (flags, size, seed)
            elif f[0] == "USAGE":
                usage = (int(f[1]), int(f[2]))
        return state, usage

    def run_and_kill(self, seed, rng):
        p = subprocess.Popen([DRIVER, "run", self.dir, str(seed), "30"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(p.stdout))
        reader.start()
        time.sleep(rng.uniform(0.01, 0.5))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        reader.join(timeout=30)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        self.assertEqual(p.returncode, -signal.SIGKILL, err)
        acked, pending = [], []
        for line in lines:
            if not line.endswith("\n"):
                break  # cut by the kill: never acted on
            f = line.split()
            if f == ["ACK"]:
                acked.extend(pending)
                pending = []
            elif f and f[0] == "OP":
                pending.append(f[1:])
        return acked, pending

    def kill_compaction(self, rng):
        p = subprocess.Popen([DRIVER, "compact", self.dir], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            p.wait(timeout=rng.uniform(0.001, 0.15))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        out, err = p.communicate()
        self.assertIn(p.returncode, (0, -signal.SIGKILL), err)

    def test_every_acknowledged_change_survives_sigkill(self):
        rng = random.Random(1234)
        state, _ = {}, None
        total_acked = 0
        for cycle in range(CYCLES):
            acked, pending = self.run_and_kill(cycle + 1, rng)
            total_acked += len(acked)
            after_ack = {}
            for box, effs in resolve(acked, state).items():
                after_ack[box] = apply_effects(state.get(box, {}), effs)
            for box in state:
                after_ack.setdefault(box, state[box])
            pending_effects = resolve(pending, after_ack)
            fsck = subprocess.run([DRIVER, "fsck", self.dir], capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual(fsck.returncode, 0, f"cycle {cycle}: fsck: {fsck.stdout}")
            actual, usage = self.dump()
            for box in set(actual) | set(after_ack) | set(pending_effects):
                have = actual.get(box, {})
                base = after_ack.get(box, {})
                effs = pending_effects.get(box, [])
                candidates = [apply_effects(base, effs[:k]) for k in range(len(effs) + 1)]
                self.assertIn(have, candidates,
                              f"cycle {cycle}: mailbox {box} is neither its acknowledged state "
                              f"nor that plus a prefix of the {len(effs)} pending changes")
            messages = sum(len(m) for m in actual.values())
            size = sum(v[1] for m in actual.values() for v in m.values())
            self.assertEqual(usage, (messages, size), f"cycle {cycle}: quota usage is off")
            state = actual
            if cycle % 3 == 2:
                self.kill_compaction(rng)
                fsck = subprocess.run([DRIVER, "fsck", self.dir], capture_output=True, text=True,
                                      timeout=120)
                self.assertEqual(fsck.returncode, 0,
                                 f"cycle {cycle}: fsck after compaction: {fsck.stdout}")
                after, _ = self.dump()
                self.assertEqual(after, state, f"cycle {cycle}: compaction changed the mail")
        self.assertGreater(total_acked, 0)
        print(f"\n{CYCLES} kill cycles, {total_acked} acknowledged changes, none lost")


if __name__ == "__main__":
    unittest.main()
