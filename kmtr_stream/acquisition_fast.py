"""Cheap copies of ``ismrmrd.Acquisition`` parts for the per-readout path.

``Acquisition.getHead()`` deep-copies the ctypes header field by field and
``Acquisition.__init__`` builds three closures per call; per readout, through
several gadgets, that was about a tenth of the streaming chain's time. These do
the same with one buffer copy and one attribute update.
"""

from __future__ import annotations

import ismrmrd
import numpy as np


def copy_head(acq: ismrmrd.Acquisition) -> ismrmrd.AcquisitionHeader:
    """An independent copy of ``acq``'s header (what ``acq.getHead()`` returns)."""
    return ismrmrd.AcquisitionHeader.from_buffer_copy(acq._head)


def _probe_acquisition_slots() -> bool:
    """True when ``Acquisition.__init__`` only stores ``(head, data, traj)`` as checked here."""
    head = ismrmrd.AcquisitionHeader()
    data, traj = np.zeros((1, 1), np.complex64), np.zeros((1, 0), np.float32)
    probe = ismrmrd.Acquisition(head, data, traj)
    fields = vars(probe)
    return (
        set(fields) == {"_head", "_Acquisition__data", "_Acquisition__traj"}
        and fields["_head"] is head
        and fields["_Acquisition__data"] is data
        and fields["_Acquisition__traj"] is traj
    )


_ACQ_NEW = object.__new__
_FAST_ACQ = _probe_acquisition_slots()


def new_acquisition(
    head: ismrmrd.AcquisitionHeader, data: np.ndarray, traj: np.ndarray
) -> ismrmrd.Acquisition:
    """``ismrmrd.Acquisition(head, data, traj)``, without its per-call closures when safe.

    ``head`` is taken as is (not copied); ``data`` must be ``(channels, samples)``
    complex64 and ``traj`` ``(samples, dims)`` float32 matching it.
    """
    if not _FAST_ACQ:
        return ismrmrd.Acquisition(head, data, traj)
    acq = _ACQ_NEW(ismrmrd.Acquisition)
    # Exactly the attributes __init__ sets (checked once at import by _probe_acquisition_slots).
    acq.__dict__.update(_head=head, _Acquisition__data=data, _Acquisition__traj=traj)
    return acq
