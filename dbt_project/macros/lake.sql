{#- The events layer of one source, as written by the Dagster events assets: {lake_root}/ and the
    files `lake()` (macros/_lake.sql, generated from the code that writes the lake) names. A source
    with no events yet reads as an empty relation with the columns of its contract. -#}
{% macro lake_root() -%}
    {{ return(var('lake_root', env_var('WAREHOUSE_LAKE', lake().default_root)) | string | trim) }}
{%- endmacro %}

{% macro lake_events(source_name) -%}
    {%- set relation = source('lake', source_name ~ '_events') -%}
    {%- set files = lake_root() ~ '/' ~ lake().events_files | replace('{source}', source_name) -%}
    {%- set found = 1 -%}
    {%- if execute -%}
        {%- set found = run_query("select count(*) from glob('" ~ files ~ "')").columns[0].values()[0] -%}
    {%- endif -%}
    {%- if found > 0 -%}
        read_parquet('{{ files }}', hive_partitioning = true, hive_types_autocast = false, union_by_name = true)
    {%- else -%}
        {%- set node = graph.sources['source.warehouse.lake.' ~ source_name ~ '_events'] -%}
        (select {% for column in node.columns.values() %}null::{{ column.data_type }} as {{ column.name }}, {% endfor %}null::varchar as event_hour where false)
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
