"""Instruments: the host-side protocol, the ``pure_callback`` adapter and simulated instruments."""
