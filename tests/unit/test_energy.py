"""Energy and carbon per phase with codecarbon offline: figures, honesty flags, no files."""

import time

import pytest

from swp.energy.meter import CodeCarbonMeter
from swp.errors import ConfigError


def test_meter_sums_repeated_phases_and_accounts_wall_time():
    meter = CodeCarbonMeter(out_dir=".", country_iso_code="deu")
    try:
        for phase in ("work", "evaluate", "work"):
            meter.begin(phase)
            t0 = time.process_time()
            while time.process_time() - t0 < 0.05:
                pass
        meter.end()
        out = meter.results()
    finally:
        meter.close()
    assert set(out["energy_phases"]) == {"work", "evaluate"}
    assert out["energy_phases"]["work"]["seconds"] >= 0.1
    assert out["energy_kwh_work"] > 0 and out["energy_country"] == "DEU"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"country_iso_code": "XX"}, "3-letter ISO code"),
        ({"country_iso_code": "ZZZ"}, "not in codecarbon's offline table"),
        ({"tracking_mode": "gpu"}, "^energy.tracking_mode must be one of process, machine; got 'gpu'$"),
    ],
)
def test_bad_energy_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CodeCarbonMeter(out_dir=".", **kwargs)


def test_a_codecarbon_failure_is_reported_not_fatal(monkeypatch):
    meter = CodeCarbonMeter(out_dir=".")
    monkeypatch.setattr(meter.tracker, "stop_task", lambda *a, **k: None)  # codecarbon's "could not measure"
    with pytest.warns(RuntimeWarning, match="energy accounting stopped"):
        meter.begin("train")
        meter.begin("finetune")  # ends train -> failure recorded; later phases are skipped
    out = meter.results()
    meter.close()
    assert out["energy_kwh"] is None and "no figures for train" in out["energy_error"]
