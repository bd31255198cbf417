"""Analysis of saved results: cascade maps, sensitivity indices, mechanism comparison, figures."""
