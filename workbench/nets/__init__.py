"""Neural networks shared by the solvers that run them and the ``workbench train`` entry points
that fit them. Networks import physics and the core, never solvers."""
