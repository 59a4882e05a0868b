"""``python -m drgnet.cli ...`` (what torchrun starts) runs the ``drgnet`` command line."""

from drgnet.cli import main

main()
