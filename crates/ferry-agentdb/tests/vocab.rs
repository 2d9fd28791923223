//! The API's vocabularies are the import profile's: every canonical value, synonym,
//! `missing` and `other` of `default_profile.toml`, and nothing else.

use std::collections::BTreeMap;

use ferry_agentdb::vocab::{normalize_word, Vocabulary, AGENT_STATUS, PRIORITY, TASK_STATUS};

#[test]
fn the_vocabularies_are_the_builtin_profiles() {
    let profile: toml::Value = toml::from_str(ferry_import::BUILTIN_TOML).unwrap();
    let vocabularies = profile["vocabularies"].as_table().unwrap();
    let ours: [&Vocabulary; 3] = [&AGENT_STATUS, &TASK_STATUS, &PRIORITY];
    assert_eq!(
        vocabularies.keys().collect::<Vec<_>>(),
        vec!["agent_status", "priority", "task_status"]
    );
    for v in ours {
        let theirs = &vocabularies[v.name];
        assert_eq!(theirs["missing"].as_str(), Some(v.missing), "{}", v.name);
        assert_eq!(theirs["other"].as_str(), Some(v.other), "{}", v.name);
        let values: BTreeMap<String, Vec<String>> = theirs["values"]
            .as_table()
            .unwrap()
            .iter()
            .map(|(k, list)| {
                let mut words: Vec<String> = list
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| normalize_word(w.as_str().unwrap()))
                    .collect();
                words.sort();
                (k.clone(), words)
            })
            .collect();
        let mine: BTreeMap<String, Vec<String>> = v
            .values
            .iter()
            .map(|(k, list)| {
                let mut words: Vec<String> = list.iter().map(|w| (*w).to_owned()).collect();
                words.sort();
                ((*k).to_owned(), words)
            })
            .collect();
        assert_eq!(mine, values, "{}", v.name);
    }
}
