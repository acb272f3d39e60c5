{#- The staging views (models/staging/): a view over the lake lists its files when it is read, so
    the same SQL needs no new view as hours land. Creating one binds it, which reads the footer of
    every file of its source (`union_by_name`): 0.3-0.5 s a view after a month of hours, in every
    marts run. So a view is created again only when its SQL or the lake's columns (the sources,
    from the contracts) changed, or on --full-refresh: their digest is the view's comment. -#}
{% materialization lake_view, adapter='duckdb' %}
    {%- set target = this.incorporate(type='view') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set lake_columns = [] -%}
    {%- for node in graph.sources.values() | sort(attribute='unique_id') if node.source_name == 'lake' -%}
        {%- for column in node.columns.values() -%}
            {%- do lake_columns.append(node.name ~ '.' ~ column.name ~ ' ' ~ column.data_type) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set digest = 'sql md5 ' ~ local_md5(sql ~ '\n' ~ lake_columns | join('\n')) -%}
    {%- set current = none -%}
    {%- if existing is not none and existing.is_view and not should_full_refresh() -%}
        {%- set found = run_query("select comment from duckdb_views() where database_name = '" ~ this.database
                                  ~ "' and schema_name = '" ~ this.schema ~ "' and view_name = '" ~ this.identifier ~ "'") -%}
        {%- set current = found.columns[0].values()[0] if found.rows | length == 1 else none -%}
    {%- endif -%}
    {{ run_hooks(pre_hooks) }}
    {%- if current == digest -%}
        {%- call statement('main') -%} select 1 {%- endcall -%}
    {%- else -%}
        {%- if existing is not none and not existing.is_view -%}
            {%- do adapter.drop_relation(existing) -%}
        {%- endif -%}
        {%- call statement('main') -%}
            create or replace view {{ target }} as (
                {{ sql }}
            );
            comment on view {{ target }} is '{{ digest }}'
        {%- endcall -%}
    {%- endif -%}
    {{ run_hooks(post_hooks) }}
    {%- do adapter.commit() -%}
    {{ return({'relations': [target]}) }}
{% endmaterialization %}
