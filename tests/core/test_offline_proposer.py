from instructlf_assets.core.offline_proposer import ExtractiveOptions, propose_extractive

DOC = "The acting is superb. We parked the car nearby. The cast is superb too. The soundtrack is loud."


def test_prefers_goal_related_clauses_over_noise(fake_embed):
    [proposals] = propose_extractive([DOC], "acting and cast quality", fake_embed, ExtractiveOptions(top_k=2))
    texts = [p.text for p in proposals]
    assert "we parked car nearby" not in texts
    assert "acting is superb" in texts


def test_top_k_and_relevance_threshold_bound_the_list(fake_embed):
    [proposals] = propose_extractive([DOC], "acting", fake_embed, ExtractiveOptions(top_k=3, min_relevance=-1))
    assert len(proposals) == 3
    [strict] = propose_extractive([DOC], "acting", fake_embed, ExtractiveOptions(top_k=3, min_relevance=0.99))
    assert strict == []


def test_diversity_avoids_picking_two_paraphrases(fake_embed):
    doc = "The acting is superb. The acting is superb indeed. The soundtrack is acting up."
    goal = "acting superb soundtrack"
    [plain] = propose_extractive([doc], goal, fake_embed, ExtractiveOptions(top_k=2, diversity=0.0, goal_weight=1.0))
    [diverse] = propose_extractive([doc], goal, fake_embed, ExtractiveOptions(top_k=2, diversity=0.9, goal_weight=1.0))
    assert {p.text for p in plain} == {"acting is superb", "acting is superb indeed"}
    assert "soundtrack is acting up" in {p.text for p in diverse}


def test_documents_without_clauses_get_no_proposals(fake_embed):
    assert propose_extractive(["Hi."], "goal", fake_embed) == [[]]
