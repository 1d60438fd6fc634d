"""The Data Sources API, as a package: `datasources.app.init_app` embeds it,
`datasources.app.create_app` is the standalone service (see README.md)."""
