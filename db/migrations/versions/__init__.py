"""Migration scripts, oldest first. Write each by hand (or review what autogenerate proposes) and never edit one
that has been released: add a new revision instead."""
