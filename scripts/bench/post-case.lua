-- wrk script: POST /v1/cases with a realistic app request body.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"channel":"app","customer":{"name":"李雷","phone":"+8613800138000","member_id":"P-001","plate":"沪B67890"},"location":{"lat":31.2304,"lon":121.4737,"crs":"wgs84","address":"人民广场","road_kind":"urban"},"fault":{"category":"battery","symptoms":["no_crank"],"description":"clicks, does not start"},"service":"jump_start"}]]
