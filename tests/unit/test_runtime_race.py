"""Which image `bench --runtime` compares the others with, and how it judges their results."""

from __future__ import annotations

import pytest

from cryostack.errors import InputError
from cryostack.runtime_bench import Contender, Run, baseline_of, ordered, verdict
from cryostack.values import version_order


def contender(key: str, *runs: Run) -> Contender:
    return Contender(key, "cryostack/" + key.replace("/", ":", 1).replace("/", "-"), list(runs))


BUILT = [contender(k) for k in ("relion/3.1.3/gcc-cpu", "relion/5.0.1/oneapi-cpu-avx512", "relion/5.0.1/gcc-cpu",
                                "relion/4.0.1/gcc-cpu", "relion/5.0.10/oneapi-cpu-avx512")]
GENERIC = ["relion/3.1.3/gcc-cpu", "relion/4.0.1/gcc-cpu", "relion/5.0.1/gcc-cpu"]


def test_the_default_baseline_is_the_newest_build_that_needs_no_cpu_feature():
    assert baseline_of(BUILT, GENERIC, None).key == "relion/5.0.1/gcc-cpu"
    # With no generic build, the newest of all (5.0.10 is newer than 5.0.9, not older than 5.0.2).
    assert baseline_of(BUILT, [], None).key == "relion/5.0.10/oneapi-cpu-avx512"


def test_a_chosen_baseline_must_be_built():
    assert baseline_of(BUILT, GENERIC, "relion/4.0.1/gcc-cpu").key == "relion/4.0.1/gcc-cpu"
    with pytest.raises(InputError, match=r"--baseline relion/4\.0\.1/gcc-cuda86: not a built RELION CPU image"):
        baseline_of(BUILT, GENERIC, "relion/4.0.1/gcc-cuda86")


def test_lines_come_newest_version_first():
    assert [c.key for c in ordered(BUILT)][:3] == ["relion/5.0.10/oneapi-cpu-avx512", "relion/5.0.1/gcc-cpu",
                                                    "relion/5.0.1/oneapi-cpu-avx512"]
    assert version_order("5.0-beta") < version_order("5.0.0") < version_order("5.0.9") < version_order("5.0.10")


def test_the_ratio_is_of_medians_and_the_noise_estimates_must_agree_within_two_percent():
    base = contender("relion/5.0.1/gcc-cpu", Run(10.0, -1000.0, 2.0), Run(12.0, -1000.0, 2.0), Run(11.0, -1000.0, 2.0))
    faster = contender("relion/5.0.1/oneapi-cpu-avx512", Run(5.0, -1100.0, 2.0), Run(6.0), Run(5.5, -1100.0, 2.03))
    value, ratio, agrees = verdict(faster, base)
    assert value == "median 5.5 s (5.0, 6.0, 5.5 s)" and ratio.startswith("0.50x relion/5.0.1/gcc-cpu;") and agrees
    # Another optimum (the log-likelihood) is shown, not judged: the model of the noise is.
    assert "log-likelihood 10.00 % apart" in ratio and "(1.50 %, allowed 2 %)" in ratio
    noisier = contender("relion/3.1.3/gcc-cpu", Run(50.0, -1000.0, 2.05))
    assert "DIFFERS" in verdict(noisier, base)[1] and not verdict(noisier, base)[2]


def test_a_run_that_failed_has_no_ratio_and_fails_the_race():
    base = contender("relion/5.0.1/gcc-cpu", Run(10.0, -1000.0))
    broken = contender("relion/5.0.1/oneapi-cpu-avx512", Run(problem="exit 2: needs AVX-512"))
    assert verdict(broken, base) == ("did not finish: exit 2: needs AVX-512", "n/a", False)
    assert verdict(base, contender("relion/5.0.1/gcc-cpu", Run(problem="exit 139")))[2] is False


def test_images_that_searched_other_orientations_get_no_ratio():
    base = contender("relion/5.0.1/gcc-cpu", Run(10.0, -1000.0, 2.0, orientations=32))
    other = contender("relion/4.0.1/gcc-cpu", Run(5.0, -1000.0, 2.0, orientations=36))
    value, ratio, agrees = verdict(other, base)
    assert ratio == "no ratio: it searched 36 orientations, the baseline 32 (not the same work)" and not agrees
