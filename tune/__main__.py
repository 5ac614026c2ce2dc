from tune.cli import app

app(prog_name="tune")
