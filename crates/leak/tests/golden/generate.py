#!/usr/bin/env python3
"""Golden values for faultline-leak's statistics, from the reference implementations.

Writes golden.json beside this script: for each series, the Mann-Kendall test as
pymannkendall's `original_test` computes it (S, Var(S) with the tie correction, Z with the
continuity correction, tau, two-sided p) and the Theil-Sen line as `scipy.stats.theilslopes`
computes it against the real (unevenly spaced) sample times. The Rust test
(tests/it/golden.rs) reads golden.json at compile time; Python is not needed to run it.

pymannkendall computes p as 2 * (1 - Phi(|z|)), which cancels to 0 once |z| passes ~8.3, so
the file also holds `p_erfc` = erfc(|z| / sqrt(2)) from scipy.special, the same quantity
computed without cancellation; faultline-leak computes p that way. Both are checked.

Regenerate (the versions the committed file was made with):

    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install scipy==1.17.1 numpy==2.4.6 pymannkendall==1.4.3
    /tmp/golden-venv/bin/python crates/leak/tests/golden/generate.py

The series are generated from a fixed seed, so regenerating with the same versions gives the
same file.
"""

import json
import math
import pathlib

import numpy as np
import pymannkendall
import scipy
import scipy.special
import scipy.stats


def series():
    rng = np.random.default_rng(20261201)
    out = []

    def add(name, t, x):
        t = [float(v) for v in t]
        x = [float(v) for v in x]
        assert len(t) == len(x)
        assert all(b > a for a, b in zip(t, t[1:])), name
        out.append({"name": name, "t": t, "x": x})

    def even(n, step=30.0, start=0.0):
        return [start + step * i for i in range(n)]

    def uneven(n, lo=10.0, hi=60.0):
        return list(np.cumsum(rng.uniform(lo, hi, n)))

    add("n3-increasing", even(3), [1, 2, 3])
    add("n3-decreasing-uneven", [0.0, 7.5, 61.25], [9, 4, 1])
    add("n4-two-equal", even(4, 15.0), [5, 5, 6, 8])
    add("constant", even(8), [42] * 8)
    add("linear-increasing", even(10), [3 * i + 7 for i in range(10)])
    add("linear-decreasing-uneven", uneven(12), [200 - 4 * i for i in range(12)])
    add("ties-increasing", even(14, 20.0), [1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 6, 6, 7])
    add("decreasing-with-ties", uneven(25),
        [max(0, 50 - i // 2 * 3) for i in range(25)])
    add("alternating-high-low", even(40), [100 if i % 2 else 10 for i in range(40)])
    add("step", even(30), [20] * 15 + [60] * 15)
    add("poisson-flat", uneven(60), rng.poisson(12, 60))
    add("normal-noise", uneven(100, 5.0, 90.0), rng.normal(50.0, 8.0, 100))
    t = uneven(120, 15.0, 45.0)
    add("leak-2-per-min-noisy",
        t, [round(30 + 2.0 * ti / 60.0 + rng.normal(0, 3)) for ti in t])
    add("random-walk", uneven(50), np.cumsum(rng.normal(0.2, 1.0, 50)))
    add("large-offset", even(20, 60.0), 1e6 + rng.integers(0, 5, 20) + np.arange(20))
    add("sawtooth", even(90, 10.0), [(i % 15) * 10 + 100 for i in range(90)])
    t = uneven(200, 1.0, 120.0)
    add("n200-increasing-noisy", t, [0.05 * ti + rng.normal(0, 25) for ti in t])
    add("n200-strictly-increasing", even(200, 5.0), [i * i for i in range(200)])
    return out


def main():
    cases = []
    for case in series():
        x = np.asarray(case["x"])
        t = np.asarray(case["t"])
        mk = pymannkendall.original_test(x)
        ts = scipy.stats.theilslopes(x, t)
        z = float(mk.z)
        p_erfc = float(scipy.special.erfc(abs(z) / math.sqrt(2.0)))
        # The two p-values agree wherever 1 - Phi(|z|) does not cancel.
        assert abs(float(mk.p) - p_erfc) < 1e-14, case["name"]
        case.update(
            s=int(mk.s),
            var_s=float(mk.var_s),
            z=z,
            tau=float(mk.Tau),
            p=float(mk.p),
            p_erfc=p_erfc,
            slope=float(ts.slope),
            intercept=float(ts.intercept),
        )
        cases.append(case)
    doc = {
        "generator": "crates/leak/tests/golden/generate.py",
        "versions": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pymannkendall": pymannkendall.__version__,
        },
        "cases": cases,
    }
    path = pathlib.Path(__file__).with_name("golden.json")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
