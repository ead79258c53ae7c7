"""`python -m bovw_vs_convnet` is the `bvc` command line."""

from bovw_vs_convnet.cli import main

main()
