-- Track Events API events. The user is `properties.user_id` when the client sent one; device
-- class and platform come from the user agent.
select
    event_id,
    event_ts,
    event_hour,
    event_name,
    category,
    priority,
    session_id,
    properties ->> 'user_id' as user_id,
    client_id,
    page_url,
    case
        when user_agent is null then 'Unknown'
        when regexp_matches(user_agent, 'iPad|Tablet') then 'Tablet'
        when regexp_matches(user_agent, 'Mobile|iPhone|Android') then 'Mobile'
        else 'Desktop'
    end as device_class,
    case
        when user_agent is null then 'Unknown'
        when regexp_matches(user_agent, 'iPhone|iPad|iOS') then 'iOS'
        when regexp_matches(user_agent, 'Android') then 'Android'
        else 'Web'
    end as platform,
    category = 'error' or regexp_matches(event_name, '(error|failed)$') as is_error,
    arrival_hour
from {{ lake_events('track') }}
