%% Writes for the sync benchmark, on an ejabberd node: each write is what
%% ejabberd does when a user's last activity changes (a Mnesia transaction
%% writing last_activity), timed one by one.
%%   paced(Host, Users, Rate, Seconds): Rate writes a second from one
%%     process; returns {Count, MedianMicros, P99Micros}.
%%   burst(Host, Users, Procs, PerProc): as fast as Procs processes can;
%%     returns {Count, Micros}.
-module(mimmigrate_writer).
-export([paced/4, burst/4]).

write(Host, Users, I) ->
    U = <<"user", (integer_to_binary(I rem Users + 1))/binary>>,
    {atomic, ok} = mnesia:transaction(fun() ->
        mnesia:write({last_activity, {U, Host}, erlang:system_time(second), integer_to_binary(I)})
    end).

paced(Host, Users, Rate, Seconds) ->
    N = Rate * Seconds,
    Gap = 1000000 div Rate,
    Start = erlang:monotonic_time(microsecond),
    Lat = [begin
               Due = Start + I * Gap,
               Now = erlang:monotonic_time(microsecond),
               if Due > Now -> timer:sleep((Due - Now) div 1000); true -> ok end,
               T0 = erlang:monotonic_time(microsecond),
               write(Host, Users, I),
               erlang:monotonic_time(microsecond) - T0
           end || I <- lists:seq(1, N)],
    S = lists:sort(Lat),
    {N, lists:nth(N div 2, S), lists:nth(max(1, N * 99 div 100), S)}.

burst(Host, Users, Procs, PerProc) ->
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    [spawn(fun() -> [write(Host, Users, P * PerProc + I) || I <- lists:seq(1, PerProc)], Self ! done end)
     || P <- lists:seq(1, Procs)],
    [receive done -> ok end || _ <- lists:seq(1, Procs)],
    {Procs * PerProc, erlang:monotonic_time(microsecond) - T0}.
