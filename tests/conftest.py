pytest_plugins = ["tests.gateway_fixtures", "tests.task_service.postgres"]
