"""Reference data tether holds for the datahub: metering grid areas and energy suppliers.

Both the simulator's generated datahub and the stored reference tables come from this catalogue,
so a demo or test datahub only ever names parties tether knows.
"""

from __future__ import annotations

GRID_AREAS: dict[str, str] = {
    "10YNO-1--------2": "NO1 Oslo",
    "10YNO-2--------T": "NO2 Kristiansand",
    "10YNO-3--------J": "NO3 Trondheim",
    "10YNO-4--------9": "NO4 Tromsø",
    "10YNO-5--------E": "NO5 Bergen",
    "50Y-NO1-GRIDA--1": "Elvia Oslo",
    "50Y-NO2-GRIDB--2": "Glitre Agder",
    "50Y-NO5-GRIDC--3": "BKK Nett",
}

ENERGY_SUPPLIERS: dict[str, str] = {
    "7080005051237": "Fjordkraft",
    "7080010002152": "Tibber Norge",
    "7080003800004": "Hafslund Strøm",
    "7080005040323": "Norgesenergi",
    "7080004093517": "Fortum Strøm",
    "7080005032779": "Ishavskraft",
}
