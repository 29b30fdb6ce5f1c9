"""Energy estimate from operation counts.

``E = ACs * e_ac + MACs * e_mac`` with the 45 nm CMOS figures of M. Horowitz, "Computing's energy
problem (and what we can do about it)", IEEE ISSCC 2014, pp. 10-14: a 32-bit floating-point ADD
costs 0.9 pJ and a 32-bit floating-point MULT 3.7 pJ. A spike-driven accumulate (AC) is one add,
``E_AC = 0.9 pJ``; a multiply-accumulate (MAC) is a multiply plus an add, ``E_MAC = 3.7 + 0.9 = 4.6 pJ``.
These are the figures commonly used to compare SNNs with ANNs. Only arithmetic is counted (no memory
access, no neuron state updates), so the result is a relative estimate, not a hardware measurement.
"""
from __future__ import annotations

from snnlab.core.validation import check_non_negative

__all__ = ["E_ADD_FP32_45NM", "E_MULT_FP32_45NM", "E_AC_J", "E_MAC_J", "energy_j"]

#: 32-bit float add, 45 nm (Horowitz, ISSCC 2014), joules
E_ADD_FP32_45NM = 0.9e-12
#: 32-bit float multiply, 45 nm (Horowitz, ISSCC 2014), joules
E_MULT_FP32_45NM = 3.7e-12
#: energy of one accumulate (a spike arriving at a synapse): one add
E_AC_J = E_ADD_FP32_45NM
#: energy of one multiply-accumulate: one multiply + one add
E_MAC_J = E_MULT_FP32_45NM + E_ADD_FP32_45NM


def energy_j(acs: float, macs: float, e_ac: float = E_AC_J, e_mac: float = E_MAC_J) -> float:
    """Energy in joules of ``acs`` accumulates and ``macs`` multiply-accumulates.

    Defaults: ``e_ac = 0.9 pJ``, ``e_mac = 4.6 pJ`` (45 nm, Horowitz ISSCC 2014). Every argument must be a
    finite number ``>= 0`` (a string or a negative count is an error).

    Example:
        >>> round(energy_j(15, 0) * 1e12, 6)   # 15 SynOps
        13.5
    """
    acs, macs, e_ac, e_mac = (check_non_negative(v, name, "energy_j") for v, name in
                              ((acs, "acs"), (macs, "macs"), (e_ac, "e_ac"), (e_mac, "e_mac")))
    return acs * e_ac + macs * e_mac
