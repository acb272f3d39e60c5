{#- incremental_strategy='replace': delete the target rows the new rows supersede, then insert.
    Config `replace_where` is a predicate on DBT_INTERNAL_DEST (the target) that may refer to
    DBT_INTERNAL_SOURCE (the freshly computed rows), e.g. the window, or an overlap test. `{lo}` and
    `{hi}` in it are the run's window (`window(**replace_window)`), filled in here, when the model
    runs: a model's config is fixed when dbt parses the project, which is done without the window's
    vars (orchestration/dbt_runner.py). -#}
{% macro get_incremental_replace_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set where = config.get('replace_where') -%}
    {%- if not where -%}
        {{ exceptions.raise_compiler_error("incremental_strategy 'replace' needs config replace_where") }}
    {%- endif -%}
    {%- if '{lo}' in where or '{hi}' in where -%}
        {%- set w = window(**config.get('replace_window', {})) -%}
        {%- set where = where | replace('{lo}', ts(w.lo)) | replace('{hi}', ts(w.hi)) -%}
    {%- endif -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} as DBT_INTERNAL_DEST where {{ where | replace('DBT_INTERNAL_SOURCE', source | string) }};
    insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ source }};
{%- endmacro %}
