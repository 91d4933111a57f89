from tomp_deploy.cli import app

app(prog_name="tomp-deploy")
