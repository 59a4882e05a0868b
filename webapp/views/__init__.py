"""Page functions of the review app; :mod:`webapp.main` decides who sees which."""
