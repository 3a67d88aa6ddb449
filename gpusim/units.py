"""Physical quantities in config files: ``"10 um"``, ``"2 d"``, ``"5 um/min"``, ``"0.01 /h"``.

Every dimensional value in a config is a string of a number and a unit.  A
bare number is refused (the reader cannot tell minutes from hours), and so is
a unit of the wrong dimension.  Values are converted to the internal units:
micrometres, minutes, micrometres per minute, events per minute, nanomolar,
mmHg (oxygen), square micrometres per minute (diffusion) and nanomolar per
minute (secretion).
"""

import math
import re

LENGTH_UNITS = {  # in micrometres
    "nm": 1e-3,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "micrometers": 1.0,
    "micrometres": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "mm": 1000.0,
    "cm": 10000.0,
}
TIME_UNITS = {  # in minutes
    "s": 1.0 / 60.0,
    "sec": 1.0 / 60.0,
    "second": 1.0 / 60.0,
    "seconds": 1.0 / 60.0,
    "min": 1.0,
    "minute": 1.0,
    "minutes": 1.0,
    "h": 60.0,
    "hr": 60.0,
    "hour": 60.0,
    "hours": 60.0,
    "d": 1440.0,
    "day": 1440.0,
    "days": 1440.0,
    "week": 10080.0,
    "weeks": 10080.0,
}

AREA_UNITS = {  # in square micrometres
    "um2": 1.0,
    "um^2": 1.0,
    "µm²": 1.0,
    "µm2": 1.0,
    "mm2": 1e6,
    "mm^2": 1e6,
    "cm2": 1e8,
    "cm^2": 1e8,
}
PRESSURE_UNITS = {  # in mmHg (oxygen partial pressure)
    "mmHg": 1.0,
    "kPa": 7.50062,
}
CONCENTRATION_UNITS = {  # in nanomolar
    "pM": 1e-3,
    "nM": 1.0,
    "uM": 1e3,
    "µM": 1e3,
    "mM": 1e6,
}

DIMENSIONS = {
    "length": ("micrometres", "um, mm", "10 um"),
    "time": ("minutes", "s, min, h, d", "2 d"),
    "speed": ("micrometres per minute", "um/min, um/h", "5 um/min"),
    "rate": ("events per minute", "/min, /h, /d", "0.01 /h"),
    "area": ("square micrometres", "um2", "40 um2"),
    "concentration": ("nanomolar", "pM, nM, uM", "50 nM"),
    "pressure": ("mmHg", "mmHg, kPa", "38 mmHg"),
    "diffusivity": ("square micrometres per minute", "um^2/min, um^2/s, cm^2/s", "1e5 um^2/min"),
    "production": ("nanomolar per minute", "nM/min, pM/min, nM/h", "0.01 nM/min"),
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*(.*?)\s*$")


class UnitError(ValueError):
    """A quantity that cannot be read: no unit, an unknown unit, or the wrong dimension."""


def _per(unit):
    """The time unit of a rate written '/h', '1/h', 'per h' or 'h^-1'; None if it is not a rate."""
    for pattern in (r"^1?\s*/\s*(\w+)$", r"^per\s+(\w+)$", r"^(\w+)\s*\^?\s*-1$"):
        m = re.match(pattern, unit)
        if m:
            return m.group(1)
    return None


def parse_quantity(text, dimension):
    """Convert ``text`` to a float in the internal unit of ``dimension``.

    >>> parse_quantity("2 d", "time")
    2880.0
    >>> parse_quantity("5 um/min", "speed")
    5.0
    """
    name, units_hint, example = DIMENSIONS[dimension]
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UnitError(f"expected a {dimension} as a string such as '{example}'")
    if isinstance(text, (int, float)):
        raise UnitError(f"missing unit: write the {dimension} with a unit ({units_hint}), e.g. '{example}'")
    m = _QUANTITY.match(text)
    if not m:
        raise UnitError(f"cannot read {text!r} as a {dimension}; write a number and a unit, e.g. '{example}'")
    value = float(m.group(1))
    unit = m.group(2)
    if not unit:
        raise UnitError(f"missing unit in {text!r}: write the {dimension} with a unit ({units_hint}), e.g. '{example}'")
    factor = None
    if dimension == "length":
        factor = LENGTH_UNITS.get(unit)
    elif dimension == "time":
        factor = TIME_UNITS.get(unit)
    elif dimension == "speed":
        parts = unit.split("/")
        if len(parts) == 2 and parts[0].strip() in LENGTH_UNITS and parts[1].strip() in TIME_UNITS:
            factor = LENGTH_UNITS[parts[0].strip()] / TIME_UNITS[parts[1].strip()]
    elif dimension == "area":
        factor = AREA_UNITS.get(unit)
    elif dimension == "concentration":
        factor = CONCENTRATION_UNITS.get(unit)
    elif dimension == "pressure":
        factor = PRESSURE_UNITS.get(unit)
    elif dimension in ("diffusivity", "production"):
        numerators = AREA_UNITS if dimension == "diffusivity" else CONCENTRATION_UNITS
        parts = unit.split("/")
        if len(parts) == 2 and parts[0].strip() in numerators and parts[1].strip() in TIME_UNITS:
            factor = numerators[parts[0].strip()] / TIME_UNITS[parts[1].strip()]
    elif dimension == "rate":
        per = _per(unit)
        if per in TIME_UNITS:
            factor = 1.0 / TIME_UNITS[per]
    if factor is None:
        raise UnitError(f"unit {unit!r} is not a {dimension}; use one of {units_hint}, e.g. '{example}'")
    if not math.isfinite(value * factor):
        raise UnitError(f"{text!r} is not a finite {dimension}")
    return value * factor


def format_minutes(minutes):
    """A readable simulated time: '45 min', '12.5 h', '2.00 d'."""
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 2 * 1440:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.2f} d"
