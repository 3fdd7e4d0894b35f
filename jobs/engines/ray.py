"""The Ray session of a stage: an embedded instance of its own, or the cluster named.

Plain `ray.init()` does not mean "embedded": with no address it attaches to whatever
`/tmp/ray/ray_current_cluster` names (the last `ray start` on this machine), so after a
head was killed every run hung for minutes on "Failed to connect to GCS". An embedded
run therefore asks for `address="local"`, which always starts a fresh instance.

A cluster is joined only when someone said so: `--address` / `ray.address`, or the
`RAY_ADDRESS` variable, which is how Ray's job supervisor tells a submitted driver
(`instructmix submit ... synth`) the cluster it runs on.
"""

from __future__ import annotations

import os

from jobs.errors import UserError

# The embedded instance serves this process only: no dashboard, and task logs stay in
# Ray's session folder instead of interleaving with our progress lines.
DEFAULT_OPTIONS = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": False}


def init_ray(address: str | None = None, **options) -> str:
    """Start or join Ray for a stage; returns the address used ("local" when embedded).

    `address` is the stage's `--address` / `ray.address`; without it `RAY_ADDRESS`, and
    without that a new local instance. `options` are passed on to `ray.init` over the
    defaults above (tests use `num_cpus`)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or "local"
    try:
        ray.init(address=address, **(DEFAULT_OPTIONS | options))
    except ConnectionError as exc:
        if address == "local":
            raise
        raise UserError(f"Ray at {address!r} (from --address / ray.address / RAY_ADDRESS) cannot be reached: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; start that cluster "
                        "or leave the address unset to run on embedded Ray") from exc
    return address
