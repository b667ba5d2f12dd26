"""Figure and table scripts that regenerate the LoL/DySink-style results from stored runs (``results/``)."""
