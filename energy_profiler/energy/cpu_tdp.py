"""A small table of CPU models and their TDP in watts, for the labelled estimate's last resort.

Figures are the manufacturers' datasheet TDPs (Intel ARK "TDP" / "Processor Base Power", AMD's
product pages "Default TDP"), for CPUs common in ML workstations and servers; they were checked
against CodeCarbon's public table (mlco2/codecarbon, codecarbon/data/hardware/cpu_power.csv) where
it lists the model. A CPU that is not here gets no estimate: the tool never guesses a TDP.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
CPUINFO_ENV = "MUTATION_CPUINFO"


def cpuinfo_path() -> Path:
    return Path(os.environ.get(CPUINFO_ENV, CPUINFO))


TDP_W: dict[str, float] = {
    # AMD EPYC 7002 (Rome), 7003 (Milan), 9004 (Genoa)
    "epyc 7302": 155, "epyc 7402": 180, "epyc 7452": 155, "epyc 7502": 180, "epyc 7542": 225,
    "epyc 7552": 200, "epyc 7642": 225, "epyc 7702": 200, "epyc 7742": 225, "epyc 7h12": 280,
    "epyc 7313": 155, "epyc 7343": 190, "epyc 7413": 180, "epyc 7443": 200, "epyc 7513": 200,
    "epyc 7543": 225, "epyc 7643": 225, "epyc 7713": 225, "epyc 7763": 280,
    "epyc 9354": 280, "epyc 9454": 290, "epyc 9554": 360, "epyc 9654": 360,
    # AMD Threadripper and Ryzen
    "ryzen threadripper 3970x": 280, "ryzen threadripper 3990x": 280, "ryzen threadripper pro 5975wx": 280,
    "ryzen 9 3900x": 105, "ryzen 9 3950x": 105, "ryzen 9 5900x": 105, "ryzen 9 5950x": 105,
    "ryzen 9 7900x": 170, "ryzen 9 7950x": 170, "ryzen 7 3700x": 65, "ryzen 7 5800x": 105,
    "ryzen 5 3600": 65, "ryzen 5 5600x": 65,
    # Intel Xeon E5 v3/v4 (Haswell, Broadwell)
    "xeon e5-2680 v3": 120, "xeon e5-2690 v3": 135, "xeon e5-2620 v4": 85, "xeon e5-2630 v4": 85,
    "xeon e5-2650 v4": 105, "xeon e5-2680 v4": 120, "xeon e5-2690 v4": 135, "xeon e5-2698 v4": 135,
    "xeon e5-2699 v4": 145,
    # Intel Xeon Scalable: Skylake, Cascade Lake, Ice Lake, Sapphire Rapids
    "xeon silver 4110": 85, "xeon silver 4114": 85, "xeon silver 4210": 85, "xeon silver 4214": 85,
    "xeon silver 4216": 100, "xeon silver 4310": 120, "xeon silver 4314": 135,
    "xeon gold 6130": 125, "xeon gold 6140": 140, "xeon gold 6148": 150, "xeon gold 6226r": 150,
    "xeon gold 6230": 125, "xeon gold 6248": 150, "xeon gold 6248r": 205, "xeon gold 6252": 150,
    "xeon gold 6254": 200, "xeon gold 6326": 185, "xeon gold 6330": 205, "xeon gold 6338": 205,
    "xeon gold 6342": 230, "xeon gold 6348": 235, "xeon gold 6354": 205,
    "xeon platinum 8160": 150, "xeon platinum 8168": 205, "xeon platinum 8180": 205,
    "xeon platinum 8260": 165, "xeon platinum 8268": 205, "xeon platinum 8280": 205,
    "xeon platinum 8358": 250, "xeon platinum 8360y": 250, "xeon platinum 8380": 270,
    "xeon platinum 8468": 350, "xeon platinum 8480+": 350,
    # Intel Core desktops and laptops
    "core i7-6700k": 95, "core i7-7700k": 91, "core i7-8700k": 95, "core i7-9700k": 95, "core i9-9900k": 95,
    "core i5-10400": 65, "core i7-10700k": 125, "core i9-10900k": 125, "core i7-12700k": 125,
    "core i9-12900k": 125, "core i7-13700k": 125, "core i9-13900k": 125, "core i9-14900k": 125,
    "core i5-8250u": 15, "core i7-8550u": 15, "core i7-8650u": 15, "core i5-1135g7": 28, "core i7-1165g7": 28,
}


def normalise(model_name: str) -> str:
    """`Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz` -> `intel xeon gold 6248 cpu @ 2.50ghz`."""
    text = re.sub(r"\((r|tm)\)", " ", model_name.lower())
    return " ".join(text.split())


def lookup(model_name: str) -> float | None:
    """The TDP of a /proc/cpuinfo `model name`, matching a table key as whole words."""
    text = normalise(model_name)
    for key, watts in TDP_W.items():
        if re.search(rf"(?<![\w+-]){re.escape(key)}(?![\w+-])", text):
            return watts
    return None


def is_virtual_machine(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the kernel runs under a hypervisor (the `hypervisor` CPU flag in /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and "hypervisor" in line.split() for line in text.splitlines())


def cpu_model_and_sockets(cpuinfo: Path = CPUINFO) -> tuple[str | None, int]:
    """The first `model name` and the number of distinct `physical id`s (sockets, at least 1)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None, 1
    model, sockets = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "physical id":
            sockets.add(value.strip())
    return model, max(1, len(sockets))
