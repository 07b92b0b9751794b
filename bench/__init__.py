"""The benchmark: the transfer saga against Temporal's own floor (`make bench`)."""
