"""Opt-in persistent XLA compilation cache (never enabled on import)."""

from __future__ import annotations


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (opt-in; never done on import).

    A new process then loads compiled NUTS/MAP programs from disk instead of recompiling.
    Default location: ``$JAXSCOPE_CACHE`` or ``~/.cache/jaxscope/xla``.

    It also makes numpyro flatten a distribution's fields in sorted order: numpyro collects them
    in a ``set``, whose order depends on ``PYTHONHASHSEED``, so the arguments of a compiled
    program (a model's priors are traced) came in a different order in about half of new
    processes and the disk cache missed. Sorting changes no value, only that order.
    """
    import os

    import jax

    path = path or os.environ.get("JAXSCOPE_CACHE") or os.path.expanduser("~/.cache/jaxscope/xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _deterministic_numpyro_flattening()
    return path


def _deterministic_numpyro_flattening() -> None:
    import jax
    from numpyro.distributions import Distribution

    changed = False
    for name in ("gather_pytree_data_fields", "gather_pytree_aux_fields"):
        fn = getattr(Distribution, name).__func__
        if getattr(fn, "_jaxscope_sorted", False):
            continue

        def gather(cls, _fn=fn):
            return tuple(sorted(_fn(cls)))

        gather._jaxscope_sorted = True
        setattr(Distribution, name, classmethod(gather))
        changed = True
    if changed:  # programs traced with the old order must not be reused with the new one
        jax.clear_caches()
