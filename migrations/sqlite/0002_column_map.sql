-- The column each property of an object table was given (src/schema/naming.rs): recorded once
-- and never changed, so a property keeps its column whatever properties appear later. A
-- property whose name no column can carry has no column and a reason instead.
create table _hsync_column_map (
    object text not null,
    property text not null,
    column_name text,
    reason text,
    recorded_at text not null,
    primary key (object, property)
);
