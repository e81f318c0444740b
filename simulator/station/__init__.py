"""The charger firmware model: sans-IO pieces of a charging station, driven by the twin."""
