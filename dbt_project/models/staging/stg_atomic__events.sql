-- Its SQL, and what it keeps out, in macros/staging.sql.
{{ stg_atomic__events_sql(lake_events('atomic')) }}
