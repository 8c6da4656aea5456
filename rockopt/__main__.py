from rockopt.cli import run

run()
