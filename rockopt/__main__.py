from rockopt.cli import main

main()
