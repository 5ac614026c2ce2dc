from tune.cli import app

if __name__ == "__main__":  # trial processes re-import this module under another name
    app(prog_name="tune")
