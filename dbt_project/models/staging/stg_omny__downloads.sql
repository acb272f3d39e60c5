-- Its SQL, and what it keeps out, in macros/staging.sql.
{{ stg_omny__downloads_sql(lake_events('omny')) }}
