{# Models go to the schema they name (`marts`, `staging`), not `main_marts`. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
