from chat4all.cli import app

app(prog_name="chat4all")
