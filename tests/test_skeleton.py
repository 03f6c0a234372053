def test_inv_lists_tasks(inv):
    result = inv("--list")
    assert result.returncode == 0, result.stderr
    assert "db." in result.stdout


def test_schema_fixture(schema_url):
    import psycopg

    with psycopg.connect(schema_url) as conn:
        assert conn.execute("select count(*) from users").fetchone() == (0,)
