"""Private internals shared by the public subpackages; no public names.

One idea per module:

- :mod:`~captum_soundness._utils.validation`: argument checks (clear ``TypeError`` /
  ``ValueError`` naming the argument, before any heavy work).
- :mod:`~captum_soundness._utils.forward`: running the user's model on (chunked) inputs,
  Captum's ``additional_forward_args`` convention, output checks.
- :mod:`~captum_soundness._utils.finite`: the one rule for values: finite, and declared
  probabilities in ``[0, 1]`` (errors name the examples).
- :mod:`~captum_soundness._utils.model_state`: leaving the user's model (and the global
  RNG) as it was found.
- :mod:`~captum_soundness._utils.rng`: generators that never touch the global RNG.
- :mod:`~captum_soundness._utils.explain`: how an explanation function is called.
- :mod:`~captum_soundness._utils.recording`: a recorder around an explanation function.
- :mod:`~captum_soundness._utils.maps`: attributions -> saliency maps.
- :mod:`~captum_soundness._utils.optional`: optional dependencies, with an install hint.
- :mod:`~captum_soundness._utils.fill_samples`: fill values drawn, checked and broadcast
  to every sample.
"""
