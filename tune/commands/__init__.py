"""One recipe per ``tune`` command, each reading top to bottom; ``tune.cli`` parses the options
and calls them."""
