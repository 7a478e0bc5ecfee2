"""Decoder for an errno field: the error's name, such as ENOENT."""

from __future__ import annotations

import errno

from ig_metrics.model.snapshot import AttrValue

# Codes of the kernel's own linux/errno.h that a tracepoint sees before the
# return to user space turns them into EINTR or a restart; not in user headers.
KERNEL_ONLY = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
               516: "ERESTART_RESTARTBLOCK"}


def errno_name(number: int) -> str:
    """ENOENT for 2; '' for 0 (no error); the digits for a number without a name."""
    if number == 0:
        return ""
    return errno.errorcode.get(number) or KERNEL_ONLY.get(number) or str(number)


def decode_errno(value, fields, spec, ctx) -> AttrValue:
    """A positive errno (the gadget negates a syscall's return) as its name."""
    return errno_name(int(value))
