-- Altis page analytics. `endpoint_id` (one device + browser) is the user sessions are cut by.
select
    event_id,
    event_ts,
    event_hour,
    event_name,
    endpoint_id,
    endpoint_user_id,
    coalesce(endpoint_device_type[1], 'Unknown') as device_class,
    coalesce(endpoint_platform, 'Unknown') as platform,
    attributes_blog_id as blog_id,
    attributes_url as url,
    metrics_elapsed_ms,
    endpoint_country as country,
    arrival_hour
from {{ lake_events('altis') }}
