-- Demo data: published demo activities of each type (readflow, pronunciation,
-- speed-quiz) in English and Spanish, for local runs and tests. It may also be applied to
-- a hosted project to give the demo pages something to show.
--
-- Fixed ids so that links and tests can name them: d3e00000-0000-4000-8000-0000000000NN,
-- where NN is 01–04 readflow, 11–14 pronunciation, 21–24 speed-quiz (odd NN in English,
-- even in Spanish). The content shapes are those described in migration 0001.
--
-- Idempotent: rows that exist are left as they are (ON CONFLICT DO NOTHING).

BEGIN;

INSERT INTO public.demo_activities
    (id, demo_type, language, grade_level, title, description, content, is_published)
VALUES
-- ReadFlow: read a passage aloud; the guide listens, follows along word by word and asks
-- about it afterwards.
(
    'd3e00000-0000-4000-8000-000000000001', 'readflow', 'en', 3,
    'The Lighthouse Keeper',
    'Read a short story aloud and talk about it with the guide.',
    $json${
        "passage": "Every evening, Mara climbed the one hundred steps of the old lighthouse. At the top, she polished the great glass lamp until it shone like a second moon. Sailors far out at sea watched for its light. When the fog rolled in one stormy night, a small fishing boat was lost near the rocks. Mara swung the beam slowly across the waves, back and forth, until the boat turned toward the harbor and reached the shore safely.",
        "target_wpm": 90,
        "focus_words": ["lighthouse", "polished", "sailors", "harbor", "safely"],
        "comprehension_questions": [
            {"question": "Where did Mara go every evening?", "answer": "To the top of the lighthouse."},
            {"question": "Why was the fishing boat in danger?", "answer": "Fog rolled in and it was lost near the rocks."},
            {"question": "How did Mara help the boat?", "answer": "She swung the light across the waves so it could find the harbor."}
        ]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000002', 'readflow', 'es', 3,
    'El faro y la gaviota',
    'Lee un cuento corto en voz alta y conversa sobre él con la guía.',
    $json${
        "passage": "Cada tarde, una gaviota llamada Lila se posaba en la barandilla del faro. Don Tomás, el farero, le guardaba un trozo de pan. Una noche de tormenta, la luz del faro se apagó. Lila voló hasta la ventana y golpeó el cristal con el pico hasta que don Tomás despertó. Él subió corriendo la escalera y encendió la lámpara justo a tiempo para guiar a un barco hasta el puerto.",
        "target_wpm": 80,
        "focus_words": ["gaviota", "barandilla", "farero", "tormenta", "lámpara"],
        "comprehension_questions": [
            {"question": "¿Cómo se llamaba la gaviota?", "answer": "Lila."},
            {"question": "¿Qué pasó la noche de tormenta?", "answer": "La luz del faro se apagó."},
            {"question": "¿Cómo ayudó Lila a don Tomás?", "answer": "Golpeó el cristal con el pico hasta despertarlo."}
        ]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000003', 'readflow', 'en', 5,
    'How Bees Make Honey',
    'A non-fiction passage about honeybees, read aloud at a steady pace.',
    $json${
        "passage": "A honeybee may visit more than a thousand flowers in a single day. With its long tongue it sips nectar, a sweet liquid hidden deep inside each blossom, and stores it in a special stomach. Back at the hive, the bee passes the nectar to younger worker bees. They chew it, add enzymes, and spread it into wax cells. Then the bees fan their wings to dry it out. When the nectar has thickened into honey, they seal each cell with a cap of wax.",
        "target_wpm": 120,
        "focus_words": ["nectar", "blossom", "enzymes", "thickened", "worker"],
        "comprehension_questions": [
            {"question": "What is nectar?", "answer": "A sweet liquid inside flowers."},
            {"question": "Why do the bees fan their wings?", "answer": "To dry the nectar so it thickens into honey."},
            {"question": "What do bees do when the honey is ready?", "answer": "They seal each cell with a wax cap."}
        ]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000004', 'readflow', 'es', 5,
    'El ciclo del agua',
    'Un texto informativo sobre el viaje del agua, leído en voz alta.',
    $json${
        "passage": "El agua de los mares, ríos y lagos nunca se queda quieta. Cuando el sol la calienta, una parte se convierte en vapor y sube al cielo. Allí arriba hace frío, así que el vapor se condensa en gotas diminutas que forman las nubes. Cuando las gotas se juntan y pesan demasiado, caen como lluvia, nieve o granizo. El agua corre por la tierra, se filtra bajo el suelo y vuelve, tarde o temprano, al mar.",
        "target_wpm": 110,
        "focus_words": ["vapor", "condensa", "diminutas", "granizo", "filtra"],
        "comprehension_questions": [
            {"question": "¿Qué le pasa al agua cuando el sol la calienta?", "answer": "Se convierte en vapor y sube al cielo."},
            {"question": "¿Cómo se forman las nubes?", "answer": "El vapor se condensa en gotas diminutas."},
            {"question": "¿De qué formas cae el agua de las nubes?", "answer": "Como lluvia, nieve o granizo."}
        ]
    }$json$::jsonb,
    true
),
-- Pronunciation: say target words and sentences; the guide listens for one sound.
(
    'd3e00000-0000-4000-8000-000000000011', 'pronunciation', 'en', 2,
    'The Two TH Sounds',
    'Practise the quiet and the buzzing TH.',
    $json${
        "focus_sound": "th",
        "words": [
            {"word": "think", "phonemes": ["θ", "ɪ", "ŋ", "k"], "ipa": "/θɪŋk/", "tip": "Put your tongue between your teeth and blow softly, no buzz."},
            {"word": "three", "phonemes": ["θ", "r", "iː"], "ipa": "/θriː/", "tip": "Start with a quiet TH, then slide straight into the R."},
            {"word": "bath", "phonemes": ["b", "æ", "θ"], "ipa": "/bæθ/", "tip": "End with your tongue peeking out; do not turn it into an F."},
            {"word": "this", "phonemes": ["ð", "ɪ", "s"], "ipa": "/ðɪs/", "tip": "Same tongue place, but let your voice buzz."},
            {"word": "mother", "phonemes": ["m", "ʌ", "ð", "ə", "r"], "ipa": "/ˈmʌðər/", "tip": "Keep the buzz going in the middle of the word."}
        ],
        "sentences": ["I think there are three birds in the bath.", "This is my mother's brother."]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000012', 'pronunciation', 'es', 2,
    'La R suave y la RR fuerte',
    'Practica la diferencia entre pero y perro.',
    $json${
        "focus_sound": "r",
        "words": [
            {"word": "pero", "phonemes": ["p", "e", "ɾ", "o"], "ipa": "/ˈpeɾo/", "tip": "Un solo toque rápido de la lengua detrás de los dientes."},
            {"word": "perro", "phonemes": ["p", "e", "r", "o"], "ipa": "/ˈpero/", "tip": "Deja vibrar la lengua varias veces: rrr."},
            {"word": "caro", "phonemes": ["k", "a", "ɾ", "o"], "ipa": "/ˈkaɾo/", "tip": "R suave entre vocales: un toque."},
            {"word": "carro", "phonemes": ["k", "a", "r", "o"], "ipa": "/ˈkaro/", "tip": "Con doble R la lengua vibra."},
            {"word": "ratón", "phonemes": ["r", "a", "t", "o", "n"], "ipa": "/raˈton/", "tip": "Al principio de la palabra la R siempre vibra."}
        ],
        "sentences": ["El perro de Rosa corre por la carretera.", "Pero el carro rojo es caro."]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000013', 'pronunciation', 'en', 4,
    'Short and Long Vowels',
    'Hear and say the difference between ship and sheep.',
    $json${
        "focus_sound": "ɪ / iː",
        "words": [
            {"word": "ship", "phonemes": ["ʃ", "ɪ", "p"], "ipa": "/ʃɪp/", "tip": "Short and relaxed: the mouth barely moves."},
            {"word": "sheep", "phonemes": ["ʃ", "iː", "p"], "ipa": "/ʃiːp/", "tip": "Smile and hold the vowel a little longer."},
            {"word": "bit", "phonemes": ["b", "ɪ", "t"], "ipa": "/bɪt/", "tip": "Quick vowel, then stop on the T."},
            {"word": "beat", "phonemes": ["b", "iː", "t"], "ipa": "/biːt/", "tip": "Stretch the EE before the T."},
            {"word": "full", "phonemes": ["f", "ʊ", "l"], "ipa": "/fʊl/", "tip": "Short U with relaxed lips."},
            {"word": "fool", "phonemes": ["f", "uː", "l"], "ipa": "/fuːl/", "tip": "Round your lips and hold the OO."}
        ],
        "sentences": ["The sheep sleeps on the ship.", "Don't be a fool: the cup is full."]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000014', 'pronunciation', 'es', 4,
    'La Ñ y la LL',
    'Practica los sonidos de niño, año, llave y calle.',
    $json${
        "focus_sound": "ɲ / ʝ",
        "words": [
            {"word": "niño", "phonemes": ["n", "i", "ɲ", "o"], "ipa": "/ˈniɲo/", "tip": "Apoya el centro de la lengua en el paladar para la Ñ."},
            {"word": "año", "phonemes": ["a", "ɲ", "o"], "ipa": "/ˈaɲo/", "tip": "No digas ano: la Ñ es un solo sonido, no N más I."},
            {"word": "llave", "phonemes": ["ʝ", "a", "β", "e"], "ipa": "/ˈʝaβe/", "tip": "La LL suena como la Y de yo en casi todo el mundo hispano."},
            {"word": "calle", "phonemes": ["k", "a", "ʝ", "e"], "ipa": "/ˈkaʝe/", "tip": "Suave, sin golpe, entre las dos vocales."},
            {"word": "lluvia", "phonemes": ["ʝ", "u", "β", "j", "a"], "ipa": "/ˈʝuβja/", "tip": "Empieza con el sonido de la LL y termina en -bia suave."}
        ],
        "sentences": ["El niño lleva la llave de la calle.", "Este año la lluvia llegó pronto."]
    }$json$::jsonb,
    true
),
-- Speed quiz: answer spoken questions against the clock.
(
    'd3e00000-0000-4000-8000-000000000021', 'speed-quiz', 'en', 3,
    'Multiplication Sprint',
    'Times tables from 6 to 9, as fast as you can say them.',
    $json${
        "topic": "multiplication facts",
        "time_limit_seconds": 60,
        "questions": [
            {"question": "What is seven times eight?", "answer": "56", "accepted_answers": ["56", "fifty-six", "fifty six"]},
            {"question": "What is six times nine?", "answer": "54", "accepted_answers": ["54", "fifty-four", "fifty four"]},
            {"question": "What is eight times eight?", "answer": "64", "accepted_answers": ["64", "sixty-four", "sixty four"]},
            {"question": "What is nine times seven?", "answer": "63", "accepted_answers": ["63", "sixty-three", "sixty three"]},
            {"question": "What is six times six?", "answer": "36", "accepted_answers": ["36", "thirty-six", "thirty six"]},
            {"question": "What is nine times nine?", "answer": "81", "accepted_answers": ["81", "eighty-one", "eighty one"]}
        ]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000022', 'speed-quiz', 'es', 2,
    'Animales: ¿cómo se llaman?',
    'Vocabulario de animales contra el reloj.',
    $json${
        "topic": "vocabulario de animales",
        "time_limit_seconds": 45,
        "questions": [
            {"question": "¿Qué animal dice miau?", "answer": "el gato", "accepted_answers": ["gato", "el gato", "un gato"]},
            {"question": "¿Qué animal tiene el cuello más largo?", "answer": "la jirafa", "accepted_answers": ["jirafa", "la jirafa"]},
            {"question": "¿Qué animal da leche y dice mu?", "answer": "la vaca", "accepted_answers": ["vaca", "la vaca"]},
            {"question": "¿Qué insecto hace miel?", "answer": "la abeja", "accepted_answers": ["abeja", "la abeja"]},
            {"question": "¿Cómo se llama la cría del perro?", "answer": "el cachorro", "accepted_answers": ["cachorro", "el cachorro", "perrito"]}
        ]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000023', 'speed-quiz', 'en', 4,
    'Planets of the Solar System',
    'Quick-fire questions about our planetary neighbours.',
    $json${
        "topic": "the solar system",
        "time_limit_seconds": 60,
        "questions": [
            {"question": "Which planet is closest to the Sun?", "answer": "Mercury", "accepted_answers": ["mercury"]},
            {"question": "Which planet is known as the Red Planet?", "answer": "Mars", "accepted_answers": ["mars"]},
            {"question": "What is the largest planet?", "answer": "Jupiter", "accepted_answers": ["jupiter"]},
            {"question": "Which planet has the most famous rings?", "answer": "Saturn", "accepted_answers": ["saturn"]},
            {"question": "How many planets are in the solar system?", "answer": "8", "accepted_answers": ["8", "eight"]}
        ]
    }$json$::jsonb,
    true
),
(
    'd3e00000-0000-4000-8000-000000000024', 'speed-quiz', 'es', 5,
    'Capitales de América',
    'Nombra la capital de cada país antes de que se acabe el tiempo.',
    $json${
        "topic": "capitales de países de América",
        "time_limit_seconds": 60,
        "questions": [
            {"question": "¿Cuál es la capital de México?", "answer": "Ciudad de México", "accepted_answers": ["ciudad de méxico", "méxico", "cdmx"]},
            {"question": "¿Cuál es la capital de Argentina?", "answer": "Buenos Aires", "accepted_answers": ["buenos aires"]},
            {"question": "¿Cuál es la capital de Perú?", "answer": "Lima", "accepted_answers": ["lima"]},
            {"question": "¿Cuál es la capital de Colombia?", "answer": "Bogotá", "accepted_answers": ["bogotá", "bogota"]},
            {"question": "¿Cuál es la capital de Chile?", "answer": "Santiago", "accepted_answers": ["santiago", "santiago de chile"]},
            {"question": "¿Cuál es la capital de Canadá?", "answer": "Ottawa", "accepted_answers": ["ottawa"]}
        ]
    }$json$::jsonb,
    true
)
ON CONFLICT (id) DO NOTHING;

COMMIT;
