{#- The events layer of one source, as written by the Dagster events assets: {lake_root}/ and the
    files `lake()` (macros/_lake.sql, generated from the code that writes the lake) names. A source
    with no events yet reads as an empty relation with the columns of its contract. -#}
{% macro lake_root() -%}
    {{ return(var('lake_root', env_var('WAREHOUSE_LAKE', lake().default_root)) | string | trim) }}
{%- endmacro %}

{#- `w` (a window, macros/window.sql): only the files of its hours (whole hours), listed hour by
    hour, for a window of up to a month; binding a read of every hour reads every file's footer
    (`union_by_name`), which would make a mart's cost grow with the lake's history. -#}
{% macro lake_events(source_name, w=none) -%}
    {%- if w is none -%}
        {%- do source('lake', source_name ~ '_events') -%}  {#- the lineage: a mart's read goes through its staging model's -#}
    {%- endif -%}
    {%- set files = lake_root() ~ '/' ~ lake().events_files | replace('{source}', source_name) -%}
    {%- set read = files -%}
    {%- if execute -%}
        {%- set hours = none if w is none else _window_hours(w) -%}
        {%- if hours is none or hours.hi - hours.lo > modules.datetime.timedelta(days=31) -%}
            {%- set found = run_query("select count(*) from glob('" ~ files ~ "')").columns[0].values()[0] -%}
            {%- set read = files if found > 0 else [] -%}
        {%- else -%}
            {%- set hour_files = lake_root() ~ '/' ~ lake().events_hour_files | replace('{source}', source_name) -%}
            {%- set listings = [] -%}
            {%- set hour = namespace(t=hours.lo) -%}
            {%- for _ in range(((hours.hi - hours.lo).total_seconds() // 3600) | int) -%}
                {%- do listings.append("select file from glob('" ~ hour_files | replace('{hour}', hour.t.strftime(lake().hour_format)) ~ "')") -%}
                {%- set hour.t = hour.t + modules.datetime.timedelta(hours=1) -%}
            {%- endfor -%}
            {%- set read = run_query(listings | join(' union all ') ~ ' order by file').columns[0].values() | list if listings else [] -%}
        {%- endif -%}
    {%- endif -%}
    {%- set relation = '' -%}
    {%- if read is string -%}
        {%- set relation = "read_parquet('" ~ read ~ "'" -%}
    {%- elif read -%}
        {%- set quoted = [] -%}
        {%- for file in read -%}{%- do quoted.append("'" ~ file | replace("'", "''") ~ "'") -%}{%- endfor -%}
        {%- set relation = "read_parquet([" ~ quoted | join(', ') ~ "]" -%}
    {%- endif -%}
    {%- if relation -%}
        {%- set relation = relation ~ ", hive_partitioning = true, hive_types_autocast = false, union_by_name = true)" -%}
    {%- endif -%}
    {%- if not execute -%}
        {{ relation }}
    {%- else -%}
        {#- every column of the source, typed: a field none of the files has (they were written before
            the contract gained it) reads as NULL -#}
        {%- set node = graph.sources['source.warehouse.lake.' ~ source_name ~ '_events'] -%}
        {%- set empty -%}
            select {% for column in node.columns.values() %}null::{{ column.data_type }} as {{ column.name }}, {% endfor %}null::varchar as event_hour where false
        {%- endset -%}
        ({{ 'select * from ' ~ relation ~ ' union all by name ' if relation }}{{ empty }})
    {%- endif -%}
{%- endmacro %}

{#- Every source's quarantine, as written by the landed assets ({lake_root}/{source}/quarantine/
    arrival_hour=X/*.parquet); empty (typed) before any. -#}
{% macro lake_quarantine() -%}
    {%- set files = lake_root() ~ '/' ~ lake().quarantine_files -%}
    {%- set found = 1 -%}
    {%- if execute -%}
        {%- set found = run_query("select count(*) from glob('" ~ files ~ "')").columns[0].values()[0] -%}
    {%- endif -%}
    {%- if found > 0 -%}
        (select regexp_extract(filename, '([^/]+)/quarantine/arrival_hour=', 1) as source, * exclude (filename)
         from read_parquet('{{ files }}', hive_partitioning = false, union_by_name = true, filename = true))
    {%- else -%}
        (select null::varchar as source, null::timestamp as arrival_hour, null::varchar as source_file,
                null::bigint as source_line, null::varchar as raw, null::varchar as reason where false)
    {%- endif -%}
{%- endmacro %}
