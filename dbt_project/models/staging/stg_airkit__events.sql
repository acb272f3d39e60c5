-- Its SQL, and what it keeps out, in macros/staging.sql.
{{ stg_airkit__events_sql(lake_events('airkit')) }}
