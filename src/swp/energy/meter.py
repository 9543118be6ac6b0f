"""Phase meters: the pipeline calls ``begin(phase)`` at each phase boundary and ``end()``.

`NullMeter` (``energy=none``) does nothing. `CodeCarbonMeter` (``energy=codecarbon``) asks
codecarbon's offline tracker for the energy (kWh) and emissions (kg CO2-eq) of each phase, with
the carbon intensity of a configured country, never touching the network or writing a file.

codecarbon measures only where the hardware exposes an energy counter (Intel/AMD RAPL on Linux,
NVIDIA NVML for GPUs, ...). Elsewhere (these CPUs: no readable RAPL) it estimates power from the
CPU's TDP times its load and RAM from a power model. Results say which: ``energy_method`` names
the source of every component and ``energy_measured`` is true only when all are counters.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from typing import Annotated, Literal

from swp.config_types import Check, Range, Runtime, check_arguments
from swp.errors import ConfigError

Watts = Annotated[float, Range(0, 1e5, lo_open=True, why="watts")]
CountryCode = Annotated[str, Check(lambda code: re.fullmatch(r"[A-Za-z]{3}", code), "a 3-letter ISO code like USA")]

# codecarbon's names for readings that come from hardware energy counters; every other
# mode (cpu_load, constant, TDP, the RAM model) is an estimate.
_COUNTER_MODES = ("intel_rapl", "windows_emi", "intel_power_gadget", "apple_powermetrics", "powermetrics")


class NullMeter:
    """Measures nothing; the pipeline's default, so it never branches on whether energy is on."""

    def __init__(self, **_: Annotated[object, Runtime("the run folder")]):
        pass

    def begin(self, phase: str) -> None:
        """Starts `phase`, ending the one before (phases with one name add up)."""

    def end(self) -> None:
        """Ends the current phase."""

    def results(self) -> dict:
        """Flat figures for results.json (none)."""
        return {}

    def close(self) -> None:
        """Releases the tracker; always called, also when the run fails."""


class CodeCarbonMeter(NullMeter):
    """Energy and CO2-eq per phase from codecarbon's `OfflineEmissionsTracker` task API.

    Args:
        out_dir: the run folder; codecarbon is given it as output dir, but no output method is
            enabled, so it writes nothing anywhere.
        country_iso_code: 3-letter ISO code whose grid carbon intensity converts kWh to CO2-eq
            (codecarbon's offline table, e.g. USA, FRA, DEU).
        region: optional US state / Canadian province for a finer intensity (e.g. california).
        tracking_mode: ``process`` counts this process's CPU share (other jobs on the machine
            are not billed to the run); ``machine`` counts the whole machine.
        force_cpu_power: the CPU's real TDP in watts when known (codecarbon's table may not
            know it); None lets codecarbon decide.
        force_ram_power: RAM power in watts when known.
        pue: data-centre power usage effectiveness multiplying every figure.
        carbon_intensity_g_per_kwh: overrides the country's grid intensity when given.
    """

    def __init__(
        self,
        out_dir: Annotated[str, Runtime("the run folder")],
        country_iso_code: CountryCode = "USA",
        region: str | None = None,
        tracking_mode: Literal["process", "machine"] = "process",
        force_cpu_power: Watts | None = None,
        force_ram_power: Watts | None = None,
        pue: Annotated[float, Range(1, 10, why="power usage effectiveness is >= 1")] = 1.0,
        carbon_intensity_g_per_kwh: Annotated[float, Range(0, 1e4)] | None = None,
    ):
        check_arguments(CodeCarbonMeter, locals(), at="energy")
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.input import DataSource

        # codecarbon sets its logger to INFO at import and logs before applying log_level;
        # quieten it here so a run's output stays the run's.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)

        country_iso_code = country_iso_code.upper()
        if country_iso_code not in DataSource().get_global_energy_mix_data():
            raise ConfigError(f"energy.country_iso_code {country_iso_code!r} is not in codecarbon's offline table")
        self.country = country_iso_code
        self.tracker = OfflineEmissionsTracker(
            country_iso_code=country_iso_code,
            region=region,
            tracking_mode=tracking_mode,
            force_cpu_power=force_cpu_power,
            force_ram_power=force_ram_power,
            pue=pue,
            force_carbon_intensity_g_co2e_kwh=carbon_intensity_g_per_kwh,
            output_methods=[],  # nothing written: the figures go to results.json
            output_dir=str(out_dir),
            log_level="error",
            allow_multiple_runs=True,  # sweep jobs run side by side; no lock file
            project_name="swp",
        )
        self.phases: dict[str, dict[str, float]] = {}
        self._current: str | None = None
        self._t0 = 0.0
        self._ram_watts: float | None = None
        self.error: str | None = None  # set once codecarbon fails; the run goes on without it

    def begin(self, phase: str) -> None:
        self.end()
        if self.error:
            return
        self._current, self._t0 = phase, time.perf_counter()
        try:
            self.tracker.start_task(phase)
        except Exception as exc:  # energy accounting must never cost a training run
            self._fail(f"start of {phase}: {type(exc).__name__}: {exc}")

    def _fail(self, why: str) -> None:
        self.error, self._current = why, None
        warnings.warn(f"energy accounting stopped ({why}); results will say so", RuntimeWarning, stacklevel=3)

    def end(self) -> None:
        if self._current is None:
            return
        try:
            data = self.tracker.stop_task()
        except Exception as exc:
            self._fail(f"end of {self._current}: {type(exc).__name__}: {exc}")
            return
        if data is None:  # codecarbon logs and returns None when it could not measure
            self._fail(f"codecarbon returned no figures for {self._current}")
            return
        wall = time.perf_counter() - self._t0
        acc = self.phases.setdefault(
            self._current, {"kwh": 0.0, "co2_kg": 0.0, "cpu_kwh": 0.0, "ram_kwh": 0.0, "gpu_kwh": 0.0, "seconds": 0.0}
        )
        self._ram_watts = data.ram_power
        acc["kwh"] += data.energy_consumed
        acc["co2_kg"] += data.emissions
        acc["cpu_kwh"] += data.cpu_energy
        acc["ram_kwh"] += data.ram_energy
        acc["gpu_kwh"] += data.gpu_energy
        acc["seconds"] += wall
        self._current = None

    def method(self) -> tuple[str, bool]:
        """How each component was obtained, and whether all of them are hardware counters."""
        parts, measured = [], True
        for hw in getattr(self.tracker, "_hardware", []):
            kind = type(hw).__name__
            mode = getattr(hw, "_mode", None)
            if kind == "CPU":
                counter = mode in _COUNTER_MODES
                tdp = getattr(hw, "_tdp", None)
                how = "" if counter else f" ({tdp} W TDP x load)"
                parts.append(f"CPU {'counter' if counter else 'estimate'}: {mode}{how}")
                measured &= counter
            elif kind == "GPU":
                parts.append("GPU counter: NVML")  # the board's energy counter (Volta and later)
            elif kind == "RAM":
                watts = f"{self._ram_watts:.1f} W" if self._ram_watts is not None else "W per GB"
                parts.append(f"RAM estimate: codecarbon power model ({watts})")
                measured = False
            else:
                parts.append(f"{kind} estimate")
                measured = False
        return "; ".join(parts) or "unknown", measured and bool(parts)

    def results(self) -> dict:
        self.end()
        if self.error:  # partial sums would understate the run: report the failure instead
            return {"energy_kwh": None, "co2_kg": None, "energy_measured": False, "energy_error": self.error}
        kwh = sum(p["kwh"] for p in self.phases.values())
        co2 = sum(p["co2_kg"] for p in self.phases.values())
        method, measured = self.method()
        out = {
            "energy_kwh": kwh,
            "co2_kg": co2,
            "energy_measured": measured,
            "energy_method": method,
            "energy_country": self.country,
            "carbon_intensity_g_per_kwh": 1000 * co2 / kwh if kwh else None,
            "energy_phases": self.phases,
        }
        for phase, p in self.phases.items():
            out[f"energy_kwh_{phase}"] = p["kwh"]
            out[f"co2_kg_{phase}"] = p["co2_kg"]
        return out

    def close(self) -> None:
        """Ends the last phase and stops codecarbon; never raises (it runs in the cleanup after a
        failure too, where an error of its own would hide the run's)."""
        try:
            self.end()
            self.tracker.stop()
        except Exception as exc:
            self._fail(f"close: {type(exc).__name__}: {exc}")
